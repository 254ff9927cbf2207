"""Where is a classification model's colour right? ΔE by confidence, and confidence curves scored.

    python -m research.confidence_curve [--model default] [--data ../shared/data/val_ood] [--every 2]
                                          [--temperature T] [--curve "0.1:0 0.3:1.6 0.45:1" ...]

Every `--every`-th photo is desaturated and run through the network once (rf 35, the torch model, the bin
logits kept). Then:
- a table: pixels binned by the network's confidence c = 1 - H / log Q (ab_classes.curve_gain), and for each
  bin the mean ΔE2000 (at the logits' resolution) of the annealed mean scaled by 0-2.5, with the best scale.
  A constant gain is right only if the best scale is the same in every bin;
- each `--curve` (knots "c:gain", the model's own confidence_gain replaced; "none" for a constant gain of 1)
  scored as chroma_scale scores (400 px, merged with the photo's L): ΔE and colourfulness, per source.
This is how the default's curve was chosen (weights/README.md, step 16).
"""
from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
from skimage.color import deltaE_ciede2000, rgb2lab

from recolor import color
from recolor.evaluate import desaturate, source_of
from recolor.images import find_images, read_image, to_rgb8
from recolor.metrics import colourfulness

from research.chroma_scale import shrink, summary
from benchmarks.common import SHARED_DATA

SCALES = np.arange(0.0, 2.75, 0.25)
EDGES = np.arange(0.0, 0.85, 0.05)  # confidence bins


def parse_curve(text: str):
    if text == "none":
        return None
    return tuple(tuple(float(v) for v in knot.split(":")) for knot in text.split())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--data", type=Path, default=SHARED_DATA / "val_ood")
    parser.add_argument("--every", type=int, default=2)
    parser.add_argument("--temperature", type=float, help="default: the model's own")
    parser.add_argument("--curve", action="append", default=[], help='knots "c:gain c:gain ..." or "none"')
    args = parser.parse_args()
    import torch
    from recolor.ab_classes import annealed_mean, confidence, entropy
    from recolor.weights import load_model
    model = load_model(args.model)[0].eval()
    if not model.config.colour_classes:
        raise SystemExit(f"{args.model}: not a classification model (no confidence to measure)")
    centres = model.classes.centres
    temperature = args.temperature or model.config.temperature
    curves = {text: parse_curve(text) for text in args.curve or ["none"]}
    sums, counts = np.zeros((len(EDGES), len(SCALES))), np.zeros(len(EDGES))
    scores = {text: defaultdict(list) for text in curves}
    colour = {text: [] for text in curves}
    for path in find_images(args.data)[::args.every]:
        truth = to_rgb8(read_image(path))
        l = color.luminance(desaturate(truth))
        small = color.resize_l(l, color.render_size(*l.shape, 35))
        with torch.inference_mode():
            logits = model(torch.from_numpy(small)[None, None], with_logits=True)[1]
            plain = annealed_mean(logits, centres, temperature)[0].permute(1, 2, 0).numpy()
            sure = confidence(entropy(logits), len(centres))[0, 0].numpy()
            decoded = {text: annealed_mean(logits, centres, temperature, curve)[0].permute(1, 2, 0).numpy()
                       for text, curve in curves.items()}
        bin_by_confidence(truth, plain, sure, sums, counts)
        small_truth = shrink(truth)
        lab_truth, l_small = rgb2lab(small_truth), color.luminance(small_truth)
        for text, ab in decoded.items():
            out = color.merge_l_ab(l_small, ab)
            scores[text][source_of(path)].append(float(deltaE_ciede2000(lab_truth, rgb2lab(out)).mean()))
            colour[text].append(colourfulness(out))
    print_bins(sums, counts)
    for text in curves:
        print(f"curve {text}: {summary(scores[text], colour[text], 3)}")


def bin_by_confidence(truth, ab, confidence, sums, counts) -> None:
    """Adds each confidence bin's ΔE sums, one column per scale of ab, at ab's resolution."""
    h, w = confidence.shape
    lab = rgb2lab(cv2.resize(truth, (w, h), interpolation=cv2.INTER_AREA))
    ab = cv2.resize(ab, (w, h), interpolation=cv2.INTER_AREA)  # the annealed mean at the logits' stride
    bins = np.clip(np.digitize(confidence, EDGES) - 1, 0, len(EDGES) - 1).ravel()
    counts += np.bincount(bins, minlength=len(EDGES))
    for j, s in enumerate(SCALES):
        de = deltaE_ciede2000(lab, np.concatenate([lab[..., :1], s * ab], -1))
        sums[:, j] += np.bincount(bins, weights=de.ravel(), minlength=len(EDGES))


def print_bins(sums, counts) -> None:
    print("confidence  share  best scale | mean ΔE at scale " + " ".join(f"{s:5.2f}" for s in SCALES))
    for i, edge in enumerate(EDGES):
        if counts[i] < 0.001 * counts.sum():
            continue
        mean = sums[i] / counts[i]
        print(f"{edge:.2f}-{edge + 0.05:.2f}  {counts[i] / counts.sum():5.3f}  {SCALES[mean.argmin()]:5.2f}      | "
              + " ".join(f"{v:5.2f}" for v in mean))


if __name__ == "__main__":
    main()
