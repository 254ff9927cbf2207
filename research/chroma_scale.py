"""Does a model add too much colour or too little for ΔE? Scale its predicted a/b and score each scale.

    python -m research.chroma_scale [--model default [M ...]] [--data ../shared/data/val_ood] [--every 6]
                                      [--scales 0 0.6 0.8 1 1.2 1.4]

Every `--every`-th photo of the folder is desaturated and colorized (rf 35, as `recolor eval`), then its a/b is
multiplied by each scale (0 = the gray baseline, 1 = the model as it is) and scored with CIEDE2000 against the
original, per source. For speed the photos are scored at 400 px on their long side, so the absolute figures
differ a little from `recolor eval`'s; compare the scales with each other. A ΔE that falls as the scale drops
below 1 says the colours the model adds are wrong often enough that less of them scores better. Each line also
gives the outputs' mean colourfulness, so models can be compared at equal colour: the scales of one model
trace its ΔE-colourfulness line, and another model is better only where it lands below that line.
"""
from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
from skimage.color import deltaE_ciede2000, lab2rgb, rgb2lab

from recolor import Colorizer
from recolor.evaluate import desaturate, source_of
from recolor.metrics import colourfulness
from recolor.images import find_images, read_image, to_rgb8

from benchmarks.common import SHARED_DATA

SCALES = (0.0, 0.6, 0.8, 1.0, 1.2, 1.4)
SIDE = 400  # px, long side the photos are scored at


def shrink(rgb: np.ndarray) -> np.ndarray:
    f = SIDE / max(rgb.shape[:2])
    if f >= 1:
        return rgb
    return cv2.resize(rgb, (round(rgb.shape[1] * f), round(rgb.shape[0] * f)), interpolation=cv2.INTER_AREA)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="+", default=["default"])
    parser.add_argument("--data", type=Path, default=SHARED_DATA / "val_ood")
    parser.add_argument("--every", type=int, default=6)
    parser.add_argument("--scales", type=float, nargs="+", default=list(SCALES))
    args = parser.parse_args()
    for model in args.model:
        score(model, args.data, args.every, args.scales)


def score(model: str, data: Path, every: int, scales: list[float]) -> None:
    colorizer = Colorizer.from_pretrained(model)
    scores: dict[float, dict[str, list[float]]] = {s: defaultdict(list) for s in scales}
    colour: dict[float, list[float]] = defaultdict(list)
    for path in find_images(data)[::every]:
        truth = to_rgb8(read_image(path))
        out = colorizer.colorize(desaturate(truth))
        lab_truth, lab_out = rgb2lab(shrink(truth)), rgb2lab(shrink(out))
        for s in scales:
            scaled = lab_out.copy()
            scaled[..., 1:] *= s
            scores[s][source_of(path)].append(float(deltaE_ciede2000(lab_truth, scaled).mean()))
            colour[s].append(colourfulness(lab2rgb(scaled)))
    print(f"{model} on every {every}th photo of {data}: mean ΔE2000 (and colourfulness) by a/b scale")
    for s in scales:
        print(f"scale {s:.1f}: {summary(scores[s], colour[s])}", flush=True)


def summary(scores: dict[str, list[float]], colour: list[float], digits: int = 2) -> str:
    """One line: mean ΔE over all photos (their mean colourfulness), then per source."""
    all_photos = [v for values in scores.values() for v in values]
    per = "  ".join(f"{k} {np.mean(v):.2f}" for k, v in sorted(scores.items()))
    return f"all ({len(all_photos)}) {np.mean(all_photos):.{digits}f} ({np.mean(colour):.1f}) | {per}"


if __name__ == "__main__":
    main()
