"""A model that is the weighted mean of models of the same shape: every float tensor Σ wᵢ × MODELᵢ (the weights
normalised to sum to 1), counters taken from the last model, whose metadata (config, decoding) is kept too.

    python research/mix_weights.py OUT.safetensors weights/recolor-small.safetensors:0.5 runs/ft/model.safetensors:0.5
    python research/mix_weights.py OUT.safetensors runs/ft-steps/{800,1200,1600}.safetensors   (equal weights)

Two uses, both from one basin (a fine-tuning run and the model it started from):
- weight-space ensembling (Wortsman et al. 2022, "Robust fine-tuning of zero-shot models", WiSE-FT): the line
  between a fine-tuned model and its start often beats both off the fine-tuning data, keeping what the start knew
  (forests, old photos without a wash) and what the new data taught (people);
- a "model soup" (Wortsman et al. 2022) of one run's checkpoints, steadier than any one of a run that wanders.
Set the decoding curve afterwards with decode_variant.py.
"""
from __future__ import annotations

import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file


def parse(arg: str) -> tuple[str, float]:
    """"PATH:WEIGHT" or "PATH" (weight 1)."""
    path, sep, weight = arg.rpartition(":")
    try:
        return (path, float(weight)) if sep else (arg, 1.0)
    except ValueError:
        return arg, 1.0


def mix(out: str, models: list[tuple[str, float]]) -> None:
    total = sum(w for _, w in models)
    files = [safe_open(path, "np") for path, _ in models]
    keys = set(files[-1].keys())
    if any(set(f.keys()) != keys for f in files):
        raise SystemExit("the models do not have the same tensors")
    mixed = {}
    for key in keys:
        tensors = [f.get_tensor(key) for f in files]
        if len({t.shape for t in tensors}) > 1:
            raise SystemExit(f"{key}: the shapes differ")
        last = tensors[-1]
        if np.issubdtype(last.dtype, np.floating):
            mean = sum(t.astype(np.float32) * (w / total) for t, (_, w) in zip(tensors, models))
            mixed[key] = mean.astype(last.dtype)
        else:
            mixed[key] = last  # counters (num_batches_tracked)
    save_file(mixed, out, metadata=files[-1].metadata())


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    mix(sys.argv[1], [parse(a) for a in sys.argv[2:]])
