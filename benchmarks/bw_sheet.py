"""A sheet to look at: real old photos, gray | one model | another, a row each.

    python -m benchmarks.bw_sheet --data ../shared/data/bw --models runs/old.safetensors default \
        --out examples/results/bw_old_vs_new_default.jpg [--height 200] [--columns 2]

Numbers cannot say "gray foliage" or "a blue dress"; a look at the same real photos through two models can
(`bw_cast` puts a number on one fault, the sepia wash, and says which photo to look at).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from recolor.engine import Colorizer
from recolor.images import find_images, read_image, to_rgb8, write_image


def row(image: np.ndarray, colorizers: list[Colorizer], height: int, gap: int = 4) -> np.ndarray:
    gray = to_rgb8(image)
    if gray.ndim == 2:
        gray = np.dstack([gray] * 3)
    panels = [gray] + [c.colorize(gray)[:, :, :3] for c in colorizers]
    width = round(gray.shape[1] * height / gray.shape[0])
    panels = [cv2.resize(p, (width, height), interpolation=cv2.INTER_AREA) for p in panels]
    spacer = np.full((height, gap, 3), 255, np.uint8)
    return np.hstack([x for p in panels for x in (p, spacer)][:-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--height", type=int, default=200)
    parser.add_argument("--columns", type=int, default=2)
    args = parser.parse_args()
    colorizers = [Colorizer.from_pretrained(m, "cpu") for m in args.models]
    rows = [row(read_image(p), colorizers, args.height) for p in find_images(Path(args.data))]
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 8), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    per_column = -(-len(rows) // args.columns)
    columns = [np.vstack(rows[i:i + per_column]) for i in range(0, len(rows), per_column)]
    tallest = max(c.shape[0] for c in columns)
    columns = [np.pad(c, ((0, tallest - c.shape[0]), (0, 12), (0, 0)), constant_values=255) for c in columns]
    write_image(Path(args.out), np.hstack(columns), overwrite=True)
    print(f"{args.out}: {len(rows)} photos, gray | {' | '.join(args.models)}")


if __name__ == "__main__":
    main()
