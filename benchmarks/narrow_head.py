"""Narrow a trained generator's full-resolution head by one channel: measure what each channel adds, drop the
one that adds least, write the result (weights/README.md, step 9).

    python -m benchmarks.narrow_head SRC.safetensors DST.safetensors [--data ../shared/data/val_ood]

Why: the head's width + L is the channel count of the full-resolution res block, and ONNX Runtime's blocked
convolutions (NCHWc) want a multiple of 16 (8 on AVX2); 16 + 1 = 17 ran the whole network 1.10× slower than
15 + 1 (benchmarks.head_levers). Each channel's effect is the mean |Δab| at rf 21 on every 40th photo of --data
when that channel is removed from the upsampling conv, the res block, the head and the hint branch.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from recolor import create_model, save_weights
from recolor.color import render_size, resize_l, rgb_to_lab
from recolor.images import find_images, read_image, to_rgb8
from recolor.weights import read_weights

from .common import SHARED_DATA


def without_channel(state: dict, channels: int, k: int) -> dict:
    """The state dict with head channel k (of `channels`; L, the last of channels + 1, stays) removed."""
    keep = [c for c in range(channels + 1) if c != k]
    up = [c * 4 + i for c in range(channels) if c != k for i in range(4)]  # shuffled channel c: conv's c·4 + i
    s = dict(state)
    for name in ("final_up.conv.weight", "final_up.conv.bias"):
        s[name] = state[name][up]
    for conv in ("final_res.body.0.0", "final_res.body.1.0"):
        s[conv + ".weight"] = state[conv + ".weight"][keep][:, keep]
        s[conv + ".bias"] = state[conv + ".bias"][keep]
    s["head.weight"] = state["head.weight"][:, keep]
    if "hints.conv.weight" in state:
        s["hints.conv.weight"] = state["hints.conv.weight"][keep]
    return s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    parser.add_argument("--data", type=Path, default=SHARED_DATA / "val_ood")
    args = parser.parse_args()
    config, state, meta = read_weights(args.src)
    full = create_model(config).eval()
    full.load_state_dict(state)
    small = create_model(replace(config, head_channels=config.head_channels - 1)).eval()
    ls = []
    for path in find_images(args.data)[::40]:
        l = rgb_to_lab(to_rgb8(read_image(path)))[..., 0]
        ls.append(torch.from_numpy(resize_l(l, render_size(*l.shape, 21)))[None, None])
    change = []
    with torch.no_grad():
        ref = [full(l) for l in ls]
        for k in range(config.head_channels):
            small.load_state_dict(without_channel(state, config.head_channels, k))
            change.append(float(np.mean([(small(l) - r).abs().mean().item() for l, r in zip(ls, ref)])))
    k = int(np.argmin(change))
    print("mean |Δab| without each channel:", " ".join(f"{c:.3f}" for c in change), f"-> dropping {k}")
    small.load_state_dict(without_channel(state, config.head_channels, k))
    info = json.loads(meta.get("info", "{}"))
    info["narrowed"] = {"from": args.src.name, "dropped_head_channel": k, "mean_abs_ab_change": round(change[k], 5)}
    save_weights(small, args.dst, info=info)


if __name__ == "__main__":
    main()
