"""Write a copy of a colour-classes model with other decoding settings (temperature, confidence curve, the
self-attention's grid); the tensors are copied as they are, only the config in the safetensors metadata changes.

    python research/decode_variant.py IN.safetensors OUT.safetensors --temperature 0.38 \
        --curve 0.1,0 0.3,1.6 0.45,1.0 --attention-grid 14
"""
from __future__ import annotations

import argparse
import json

from safetensors import safe_open
from safetensors.numpy import save_file


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--temperature", type=float)
    p.add_argument("--curve", nargs="*", help="confidence,gain knots; none: no curve")
    p.add_argument("--attention-grid", type=int, help="keys and values from N×N positions; 0: every position")
    a = p.parse_args()
    with safe_open(a.src, "numpy") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    config = json.loads(meta["config"])
    if a.temperature is not None:
        config["temperature"] = a.temperature
    if a.curve is not None:
        config["confidence_gain"] = [[float(v) for v in knot.split(",")] for knot in a.curve] or None
    if a.attention_grid is not None:
        config["attention_grid"] = a.attention_grid or None
    meta["config"] = json.dumps(config)
    save_file(tensors, a.dst, metadata=meta)


if __name__ == "__main__":
    main()
