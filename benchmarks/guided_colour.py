"""Guided colour, measured: what a reference photo buys, and how to apply it.

    python -m benchmarks.guided_colour --data ../shared/data/val_ood [--limit 60] [--model default]
    python -m benchmarks.guided_colour --curve --data ../shared/data/val_ood [--limit 100] [--model default]

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--limit", type=int, default=60)
    parser.add_argument("--model", default="default")
    parser.add_argument("--curve", action="store_true", help="the hint curve instead of the reference ways")
    args = parser.parse_args()
    if args.curve:
        return hint_curve(args)
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
