"""Does the model know the vivid colours it leaves brown, or is it unsure of them? A measure no decoding can move.

    python research/vivid_knowledge.py --data ../shared/data/val_ood --models default runs/new.safetensors

On the pixels whose true colour is vivid (chroma above 30), from the bin distribution of a colour-classes model
(temperature 1, before any decoding): the probability mass within 15 a/b units of the true colour, the mass
near gray (bins of chroma below 20), the top bin's mass, and how often the top bin lies within 15 units of the
truth. A flat distribution with little mass near the truth means the network does not know the colour: no
temperature or confidence curve can then give the colour back, only training. Per source (file-name prefix)
and overall, at the engine's render size for rf 35 (`color.render_size`).
"""
from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import torch

from recolor import color
from recolor.evaluate import source_of
from recolor.images import find_images, read_image, to_rgb8
from recolor.weights import load_model

VIVID, NEAR, GRAYISH = 30.0, 15.0, 20.0


def photo_stats(model, path: Path, render_factor: int = 35) -> np.ndarray | None:
    """(mass near truth, mass near gray, top-bin mass, top bin near truth) summed over the vivid pixels, + count."""
    rgb = to_rgb8(read_image(path))[:, :, :3]
    h, w = color.render_size(*rgb.shape[:2], render_factor)
    lab = color.rgb_to_lab(cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0)
    with torch.no_grad():
        _, logits = model(torch.from_numpy(lab[None, None, :, :, 0]), with_logits=True)
    p = torch.softmax(logits[0].float(), 0).numpy()
    truth = cv2.resize(lab[:, :, 1:], (p.shape[2], p.shape[1]), interpolation=cv2.INTER_AREA)
    vivid = np.hypot(truth[..., 0], truth[..., 1]) > VIVID
    if not vivid.any():
        return None
    pv, t = p[:, vivid], truth[vivid]
    centres = model.classes.centres.numpy()
    near = np.linalg.norm(centres[:, None, :] - t[None], axis=-1) < NEAR
    top = pv.argmax(0)
    return np.array([(pv * near).sum(), pv[np.hypot(*centres.T) < GRAYISH].sum(), pv.max(0).sum(),
                     near[top, np.arange(len(top))].sum(), vivid.sum()])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--models", nargs="+", required=True)
    a = ap.parse_args()
    photos = find_images(a.data)
    print("| model | source | vivid pixels | mass near truth | mass near gray | top bin's mass | top bin near truth |")
    print("|---|---|---|---|---|---|---|")
    for name in a.models:
        model = load_model(name)[0].eval()
        totals = defaultdict(lambda: np.zeros(5))
        for path in photos:
            stats = photo_stats(model, path)
            if stats is not None:
                totals[source_of(path)] += stats
                totals["all"] += stats
        for source, (near, gray, top, hit, n) in sorted(totals.items(), key=lambda kv: kv[0] == "all"):
            print(f"| {name} | {source} | {int(n)} | {near / n:.2f} | {gray / n:.2f} | {top / n:.3f} | {hit / n:.0%} |")


if __name__ == "__main__":
    main()
