"""Guided colour, measured: what a reference photo buys, and how to apply it.

    python -m benchmarks.guided_colour --data ../shared/data/val_ood [--limit 60] [--model default]
    python -m benchmarks.guided_colour --curve --data ../shared/data/val_ood [--limit 100] [--model default]
    python -m benchmarks.guided_colour --locality --data ../shared/data/val_ood [--limit 16]
    python -m benchmarks.guided_colour --sheet photo.jpg examples/results/hint_sheet.jpg 300,200=#ff0000 --data .

--locality: one saturated red hint at the centre of each of --limit photos spread evenly over the folder (all with
--limit 0): the far-field change (mean |Δab| over pixels farther than half the short side) and the share of the
way to the asked red (gamut-mapped at each pixel's L; also against the raw red) that the 9×9 patch moves,
medians over photos (hints.locality, as `recolor eval --hints` reports it with its own choice of wrong colour).
--sheet PHOTO OUT.jpg: gray | automatic | one wrong-colour hint, its region outlined | with the hint.

--curve: the Zhang-style hint curve (0, 1, 5, 10 simulated hints: ΔE2000 and PSNR) of the network alone
and with hint propagation (propagation.py), on the same photos and hints, as `recolor eval --hints` draws them.

Each photo is desaturated and colorized with no reference, and with the reference's palette applied to the
predicted a/b in several ways: mean and spread (Reinhard on chroma) with two clamps of the spread ratio, and
the mean shift at strengths 1, 3/4, 1/2 (shipped: reference.py) and 1/4. The reference is another photo of the
same source (file-name prefix): the same kind of scene, not the same picture, as a user's period photo of the
same uniform would be. A reference that is the photo itself gives the ceiling.
Prints mean ΔE2000 per way; numbers for the README of benchmarks.
"""
from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np

from recolor import color, metrics
from recolor.engine import Colorizer
from recolor.evaluate import desaturate, load_truth, source_of
from recolor.images import ImageError, find_images
from recolor.reference import Palette


def mean_and_spread(ab: np.ndarray, reference: np.ndarray, limits: tuple[float, float]) -> np.ndarray:
    """Reinhard et al. 2001 on a/b: mean and (clamped) spread of the reference."""
    ref = color.ab_of(reference.astype(np.float32) / 255).reshape(-1, 2)
    flat = ab.reshape(-1, 2)
    ratio = np.clip(ref.std(axis=0) / np.maximum(flat.std(axis=0), 1e-3), *limits)
    return ((ab - flat.mean(axis=0)) * ratio + ref.mean(axis=0)).astype(np.float32)


def colorize_with(colorizer: Colorizer, gray: np.ndarray, move) -> np.ndarray:
    l_full = color.luminance(gray)
    ab = colorizer.chroma([l_full], 35, 1)[0]
    return color.merge_l_ab(l_full, move(ab))


def hint_curve(args) -> None:
    from recolor.evaluate import evaluate_photos
    paths = find_images(Path(args.data))[:args.limit]
    colorizer = Colorizer.from_pretrained(args.model, "cpu")
    print(f"{len(paths)} photos of {args.data}, model {args.model}, rf 35")
    print("| hints | network alone: ΔE2000 / PSNR | with propagation: ΔE2000 / PSNR |")
    rows = {}
    for hold in (False, True):
        colorizer.hold_hints = hold
        rows[hold] = evaluate_photos(colorizer, paths, 35, 4, baseline=False, hint_counts=(1, 5, 10)).summary()
    for n in (0, 1, 5, 10):
        key = "model" if n == 0 else f"hints{n}"
        cells = [f"{rows[h][key]['delta_e']:.3f} / {rows[h][key]['psnr']:.2f}" for h in (False, True)]
        print(f"| {n} | {cells[0]} | {cells[1]} |")


def locality_table(args) -> None:
    from recolor.hints import Hint, color_ab, locality
    paths = find_images(Path(args.data))
    if args.limit:
        paths = [paths[i] for i in np.linspace(0, len(paths) - 1, args.limit).round().astype(int)]
    colorizer = Colorizer.from_pretrained(args.model, "cpu")
    red = color_ab("#ff0000")
    rows = []
    for path in paths:
        try:
            gray = desaturate(load_truth(path))
        except ImageError:
            continue
        hint = Hint(float(gray.shape[1] // 2), float(gray.shape[0] // 2), red)
        before, after = colorizer.colorize(gray, 35), colorizer.colorize(gray, 35, hints=[hint])
        far, share = locality(before, after, hint)
        rows.append((far, share, raw_share(before, after, hint)))
        print(f"| {path.name} | {far:.2f} | {share:.2f} | {rows[-1][2]:.2f} |", flush=True)
    far, share, raw = np.median(np.array(rows), axis=0)
    print(f"{len(rows)} photos of {args.data}, model {args.model}, rf 35: one red hint at the centre, medians: "
          f"far-field |Δab| {far:.2f}, 9×9 patch {share:.1%} of the way to the gamut-mapped red ({raw:.1%} to raw red)")


def raw_share(before: np.ndarray, after: np.ndarray, hint, patch: int = 9) -> float:
    """The share of the way to the asked a/b itself (no gamut mapping) that the patch at the hint moved."""
    from recolor.hints import share_of_way
    r, x, y = patch // 2, int(hint.x), int(hint.y)
    start, end = (color.ab_of(im[y - r:y + r + 1, x - r:x + r + 1].astype(np.float32) / 255).reshape(-1, 2).mean(0)
                  for im in (before, after))
    return share_of_way(start, end, np.float32(hint.ab))


def sheet(args) -> None:
    """gray | automatic | the hint's region over the photo | with one wrong-colour hint, as a small JPEG."""
    import cv2
    from recolor.hints import parse_hint
    from recolor.images import encode_image, read_image, to_rgb8
    from recolor.propagation import region_overlay
    photo, out, hint_text = args.sheet
    gray = desaturate(to_rgb8(read_image(photo)))
    hint = parse_hint(hint_text)
    colorizer = Colorizer.from_pretrained(args.model, "cpu")
    before, after = colorizer.colorize(gray, 35), colorizer.colorize(gray, 35, hints=[hint])
    overlay = region_overlay(color.luminance(gray), [hint], 35)
    overlay = cv2.resize(overlay, gray.shape[1::-1], interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255
    regions = (before * (1 - overlay[..., 3:]) + overlay[..., :3] * 255 * overlay[..., 3:]).astype(np.uint8)
    panels = [gray, before, regions, after]
    for panel in panels[2:]:
        cv2.circle(panel, (int(hint.x), int(hint.y)), 6, (255, 255, 255), 2)
    sheet_rgb = np.concatenate([np.pad(p, ((0, 0), (0, 6), (0, 0)), constant_values=255) for p in panels], axis=1)
    scale = min(1.0, 1600 / sheet_rgb.shape[1])
    sheet_rgb = cv2.resize(sheet_rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    Path(out).write_bytes(encode_image(sheet_rgb, ".jpg"))
    print(f"{out}: gray | automatic | the hint's region | with {hint_text}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--limit", type=int, default=60)
    parser.add_argument("--model", default="default")
    parser.add_argument("--curve", action="store_true", help="the hint curve instead of the reference ways")
    parser.add_argument("--locality", action="store_true", help="one red hint at the centre: how local it stays")
    parser.add_argument("--sheet", nargs=3, metavar=("PHOTO", "OUT", "HINT"), help="a before/after sheet of a hint")
    args = parser.parse_args()
    if args.curve:
        return hint_curve(args)
    if args.locality:
        return locality_table(args)
    if args.sheet:
        return sheet(args)
    by_source: dict[str, list[Path]] = defaultdict(list)
    for path in find_images(Path(args.data)):
        by_source[source_of(path)].append(path)
    pairs = []  # (photo, another photo of its source), spread over the sources
    while len(pairs) < args.limit and any(len(v) > 1 for v in by_source.values()):
        for paths in by_source.values():
            if len(paths) > 1 and len(pairs) < args.limit:
                pairs.append((paths.pop(0), paths[0]))
    colorizer = Colorizer.from_pretrained(args.model, "cpu")
    scores = defaultdict(list)
    for photo, other in pairs:
        try:
            truth, ref = load_truth(photo), load_truth(other)
        except ImageError:
            continue
        gray = desaturate(truth)
        same, own = Palette.of(ref), Palette.of(truth)
        ways = {"none": lambda ab: ab,
                "mean + spread (x0.5-2)": lambda ab: mean_and_spread(ab, ref, (0.5, 2.0)),
                "mean + spread (x0.8-1.25)": lambda ab: mean_and_spread(ab, ref, (0.8, 1.25)),
                "mean only": lambda ab: same.apply(ab, 1.0),
                "3/4 of the mean shift": lambda ab: same.apply(ab, 0.75),
                "half the mean shift (shipped)": lambda ab: same.apply(ab, 0.5),
                "1/4 of the mean shift": lambda ab: same.apply(ab, 0.25),
                "ceiling, own photo: mean + spread (x0.5-2)": lambda ab: mean_and_spread(ab, truth, (0.5, 2.0)),
                "ceiling, own photo: mean only": lambda ab: own.apply(ab, 1.0),
                "ceiling, own photo: half the mean shift": lambda ab: own.apply(ab, 0.5)}
        for name, move in ways.items():
            scores[name].append(metrics.image_metrics(truth, colorize_with(colorizer, gray, move))["delta_e"])
    print(f"{len(scores['none'])} photos of {args.data}, model {args.model}, rf 35")
    for name, values in scores.items():
        print(f"| {name} | {np.mean(values):.3f} |")


if __name__ == "__main__":
    main()
