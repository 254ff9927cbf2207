"""The two graph levers of 2026-11-30, timed in ONNX Runtime as ratios against the graph before them.

    python -m research.head_levers [--reps 12]

- upsampling as one stride-2 ConvTranspose instead of a 1×1 Conv + DepthToSpace (the same maths: see
  model.PixelShuffleUp; the old form is rebuilt here only to time it);
- a 15-channel head, so the full-resolution res block has 16 channels (15 + L) instead of 17.

Random weights (speed does not depend on them), the shipped architecture otherwise (then with a hint input),
fp32, all cores, spinning off as the engine runs it. Sizes: a 640×480 film frame at rf 21 (384×288, batches
of 4) and a 1920×1080 photo at rf 35 (736×416). Each variant is timed against the old graph in alternation;
medians of the per-pair ratios.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from recolor.model import ModelConfig, PixelShuffleUp, create_model
from recolor.onnx_runtime import OnnxModel, export

from benchmarks.common import RESULTS, machine
from research.levers import paired_ratio

SIZES = {"film 384x288, batch 4": (4, 288, 384), "photo 736x416": (1, 416, 736)}


def shuffle_forward(self, x: torch.Tensor) -> torch.Tensor:
    """PixelShuffleUp as it was: 1×1 conv, ReLU, pixel shuffle (DepthToSpace in ONNX), blur."""
    x = F.relu(F.pixel_shuffle(self.conv(x), 2))
    return F.avg_pool2d(F.pad(x, (1, 0, 1, 0), mode="replicate"), 2, stride=1) if self.blur else x


@contextlib.contextmanager
def old_upsampling():
    new = PixelShuffleUp.forward
    PixelShuffleUp.forward = shuffle_forward
    try:
        yield
    finally:
        PixelShuffleUp.forward = new


def graphs(folder: Path) -> dict[str, OnnxModel]:
    torch.manual_seed(0)
    out = {}
    for head in (16, 15):
        model = create_model(replace(ModelConfig(), head_channels=head)).eval()
        with old_upsampling():
            out[f"head {head}, Conv + DepthToSpace"] = OnnxModel(export(model, folder / f"old{head}.onnx"))
        out[f"head {head}, ConvTranspose"] = OnnxModel(export(model, folder / f"new{head}.onnx"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=12)
    args = parser.parse_args()
    results = {"machine": machine(), "ratios": {}}
    with tempfile.TemporaryDirectory() as tmp:
        models = graphs(Path(tmp))
        base_name = "head 16, Conv + DepthToSpace"
        base = models[base_name]
        for size_name, (b, h, w) in SIZES.items():
            l = np.random.default_rng(0).uniform(0, 100, (b, 1, h, w)).astype(np.float32)
            for name, model in models.items():
                if name == base_name:
                    continue
                ratio = paired_ratio(lambda: base(l), lambda m=model: m(l), args.reps)
                results["ratios"][f"{size_name}: {name}"] = ratio
                print(f"{size_name}: {name} vs {base_name}: {ratio:.2f}×", flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "head_levers.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
