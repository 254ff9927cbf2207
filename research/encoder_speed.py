"""Network time of the generator with each encoder, as ratios against the shipped one (MobileNetV2).

    python -m research.encoder_speed [--reps 10] [--encoders efficientnet_lite0 ...]

The default-model issue allows a larger encoder at up to 1.3× today's network time at render factor 35. Each
generator has the shipped architecture otherwise (colour classes; a hint input then), random weights (speed does not
depend on them), fp32 in ONNX Runtime as the engine runs it on a CPU. Sizes: a square photo at rf 35 (576×576),
a 1920×1080 photo at rf 35 (736×416) and a 640×480 film frame at rf 21 (384×288, batches of 4). Each encoder is
timed against MobileNetV2 in alternation; medians of the per-pair ratios (above 1: slower).
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from recolor.model import ModelConfig, create_model
from recolor.onnx_runtime import OnnxModel, export

from benchmarks.common import RESULTS, machine
from research.levers import paired_ratio

SIZES = {"square rf 35 576x576": (1, 576, 576), "photo rf 35 736x416": (1, 416, 736),
         "film rf 21 384x288, batch 4": (4, 288, 384)}
BASE = "mobilenet_v2"


def graph(encoder: str, folder: Path) -> OnnxModel:
    torch.manual_seed(0)
    config = ModelConfig(encoder=encoder, colour_classes=True)
    return OnnxModel(export(create_model(config).eval(), folder / f"{encoder}.onnx"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--encoders", nargs="+",
                        default=["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
    args = parser.parse_args()
    results = {"machine": machine(), "base": BASE, "slowdown": {}}
    with tempfile.TemporaryDirectory() as tmp:
        base = graph(BASE, Path(tmp))
        for encoder in args.encoders:
            model = graph(encoder, Path(tmp))
            for size_name, (b, h, w) in SIZES.items():
                l = np.random.default_rng(0).uniform(0, 100, (b, 1, h, w)).astype(np.float32)
                slowdown = 1 / paired_ratio(lambda: base(l), lambda: model(l), args.reps)
                results["slowdown"][f"{encoder}, {size_name}"] = round(slowdown, 3)
                print(f"{encoder}, {size_name}: {slowdown:.2f}× {BASE}'s time", flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "encoder_speed.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
