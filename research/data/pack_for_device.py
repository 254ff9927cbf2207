"""Pack a training subset small enough to travel with the checkout to a lent GPU (../recipes/README.md, "On a
lent GPU": about 30 MB is left beside the tracked files).

    python research/data/pack_for_device.py ../shared/data/train runs/data/extra --out .devdata/train \
        --budget-mb 28 --short-side 176 --recipe research/recipes/people-b.json

Photos are drawn in a weighted random order, each weighted by its source's `source_weights` in the recipe (the
file-name prefix, as `recolor train` weighs them). Each photo is scaled down to the short side (never up) and
stored as WebP until the budget is spent (quality 80: 1.7× as many photos in the budget as JPEG at quality 88,
measured on 150 photos of train-v3; `--format jpg` for JPEG). The packed set is already weighted, so train on
it with no `source_weights`. Scoring photos (val, val_ood, bw) are never inputs here. Writes OUT/*.webp under their
original names and OUT/../pack_manifest.csv (packed name, original path, bytes). The same inputs and seed
always give the same pack.
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import cv2
import numpy as np

from recolor.images import find_images
from recolor.training.data import draw_probabilities, load_rgb


def shrunk(path: Path, short_side: int, suffix: str, quality: int) -> bytes | None:
    """The photo scaled down to `short_side` (never up), encoded; None if the trainer cannot read it."""
    rgb = load_rgb(path)  # the trainer's own reader, so what it skips is skipped here too
    if rgb is None:
        return None
    image = cv2.cvtColor(np.round(rgb * 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
    scale = short_side / min(image.shape[:2])
    if scale < 1:
        size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    flag = cv2.IMWRITE_WEBP_QUALITY if suffix == ".webp" else cv2.IMWRITE_JPEG_QUALITY
    ok, data = cv2.imencode(suffix, image, [flag, quality])
    return data.tobytes() if ok else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--budget-mb", type=float, default=28.0)
    p.add_argument("--short-side", type=int, default=176)
    p.add_argument("--format", choices=("webp", "jpg"), default="webp")
    p.add_argument("--quality", type=int, help="encoder quality (default: 80 for WebP, 88 for JPEG)")
    p.add_argument("--recipe", type=Path, help="a training config whose source_weights weigh the draw")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    suffix, quality = f".{a.format}", a.quality or (80 if a.format == "webp" else 88)
    photos = [path for folder in a.folders for path in find_images(folder)]
    weights = json.loads(a.recipe.read_text()).get("source_weights", {}) if a.recipe else {}
    probs = draw_probabilities([str(x) for x in photos], weights)
    n = len(photos) if probs is None else int(np.count_nonzero(probs))  # a weight of 0 leaves a source out
    order = np.random.default_rng(a.seed).choice(len(photos), size=n, replace=False, p=probs)
    a.out.mkdir(parents=True, exist_ok=False)  # a pack is made once, never mixed into an older one
    budget, spent, rows, names = a.budget_mb * 1e6, 0, [], set()
    for i in order:
        name = photos[i].with_suffix(suffix).name
        data = None if name in names else shrunk(photos[i], a.short_side, suffix, quality)
        if data is None:  # unreadable, or a second photo of that name from another folder
            continue
        if spent + len(data) > budget:
            break
        (a.out / name).write_bytes(data)
        spent += len(data)
        names.add(name)
        rows.append((name, str(photos[i]), len(data)))
    with open(a.out.parent / "pack_manifest.csv", "w", newline="") as f:
        csv.writer(f).writerows([("packed", "original", "bytes"), *rows])
    print(f"{a.out}: {len(rows)} of {len(photos)} photos, {spent / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
