"""Decode by how much likelier a colour is *here* than anywhere: a copy of a colour-classes model whose bin
logits are shifted by −β × log(the model's own mean bin distribution), folded into the class head's bias, so
the network, the engine and the ONNX graph are unchanged and it costs nothing at run time.

    python research/prior_shift.py --data ../shared/data/val --model default --beta 0.2 --out runs/p02.safetensors

The annealed mean and the confidence curve favour the common colours (grays and browns) wherever the network is
unsure. Dividing p(colour | photo) by p(colour)^β (a pointwise-mutual-information decoding) leaves a pixel whose
distribution is just the prior near flat, so the confidence curve still keeps it gray, and lifts the rarer
colours where the network puts more mass on them than it usually does. The mean distribution is taken over the
pixels of the photos in --data at rf 35's render size (use `val`, not the photos models are chosen on), and kept
beside the output as .prior.npy so other β cost no second pass (--prior FILE).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import torch
from safetensors import safe_open
from safetensors.numpy import save_file

from recolor import color
from recolor.images import find_images, read_image, to_rgb8
from recolor.weights import load_model, resolve

HEAD_BIAS = "classes.net.2.bias"  # the last 1×1 conv of the class head: one logit per a/b bin


def mean_distribution(model, photos: list[Path], render_factor: int = 35) -> np.ndarray:
    """The bin distribution (temperature 1) averaged over every pixel of the photos at the render size."""
    total, count = 0.0, 0
    for path in photos:
        rgb = to_rgb8(read_image(path))[:, :, :3]
        h, w = color.render_size(*rgb.shape[:2], render_factor)
        lab = color.rgb_to_lab(cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0)
        with torch.no_grad():
            _, logits = model(torch.from_numpy(lab[None, None, :, :, 0]), with_logits=True)
        p = torch.softmax(logits[0].float(), 0)
        total, count = total + p.sum((1, 2)).numpy().astype(np.float64), count + p[0].numel()
    return total / count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--beta", type=float, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--data", type=Path, help="photos to take the mean distribution over")
    ap.add_argument("--prior", type=Path, help="a .prior.npy written by an earlier run, instead of --data")
    ap.add_argument("--limit", type=int, default=120, help="photos of --data used, evenly spaced")
    a = ap.parse_args()
    if a.prior is not None:
        prior = np.load(a.prior)
    else:
        photos = find_images(a.data)
        photos = [photos[i] for i in np.linspace(0, len(photos) - 1, min(a.limit, len(photos))).round().astype(int)]
        prior = mean_distribution(load_model(a.model)[0].eval(), photos)
        np.save(a.out.with_suffix(".prior.npy"), prior)
    with safe_open(str(resolve(a.model).path), "numpy") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    bias = tensors[HEAD_BIAS]
    shift = -a.beta * np.log(np.maximum(prior, 1e-6))
    tensors[HEAD_BIAS] = (bias.astype(np.float32) + (shift - shift.mean())).astype(bias.dtype)
    meta["prior_shift"] = json.dumps({"beta": a.beta, "data": str(a.data or a.prior)})
    save_file(tensors, str(a.out), metadata=meta)
    print(f"{a.out}: β {a.beta}, prior's entropy {-(prior * np.log(prior + 1e-12)).sum():.2f} nats "
          f"(uniform {np.log(len(prior)):.2f}), largest bin {prior.max():.3f}")


if __name__ == "__main__":
    main()
