"""A weights file with its batch-norm statistics measured again on training photos: for a model made by
mix_weights.py, whose statistics are the mean of its parents' and fit neither.

    python research/bn_recalibrate.py IN.safetensors OUT.safetensors --data runs/data/train-v3 \
        [--recipe research/recipes/people-f.json] [--photos 1024] [--size 224]

Averaged weights give activations of another mean and spread than either parent's, so the averaged running
statistics normalise them wrongly; SWA (Izmailov et al. 2018) recomputes them after averaging for that reason,
and REPAIR (Jordan et al. 2022) shows the collapse it prevents in merged networks. Here every BatchNorm's
statistics are reset and measured as a plain mean over `--photos` training crops, drawn as the recipe draws
them (its source weights and zoom), with the rest of the network in eval mode. The weights are unchanged.
Set the decoding afterwards with decode_variant.py, as for any mix.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from recolor.images import find_images
from recolor.model import create_model
from recolor.training.data import ColorPhotos, draw_probabilities
from recolor.weights import read_weights, save_weights


def photo_keys(paths: list[str], weights: dict, count: int, size: int, seed: int) -> list[tuple[int, int, int]]:
    """`count` (file index, sample number, crop size) keys drawn as the trainer draws them."""
    rng = np.random.default_rng(seed)
    p = draw_probabilities(paths, weights)
    files = rng.choice(len(paths), count, p=p) if p is not None else rng.permutation(len(paths))[:count]
    return [(int(f), 10_000_000 + i, size) for i, f in enumerate(files)]


@torch.no_grad()
def recalibrate(model: torch.nn.Module, photos: ColorPhotos, keys: list, batch: int = 16) -> None:
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative mean over all batches, not an exponential one
        m.train()
    for start in range(0, len(keys), batch):
        l_in = torch.from_numpy(np.stack([photos[k][0] for k in keys[start:start + batch]]))
        model(l_in)
    model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src")
    parser.add_argument("out")
    parser.add_argument("--data", required=True, help="folder of training photos")
    parser.add_argument("--recipe", help="a training config whose source_weights and zoom to draw by")
    parser.add_argument("--photos", type=int, default=1024)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    recipe = json.loads(Path(args.recipe).read_text()) if args.recipe else {}
    config, state, meta = read_weights(Path(args.src))
    model = create_model(config)
    model.load_state_dict(state)
    paths = [str(p) for p in find_images(Path(args.data))]
    photos = ColorPhotos(paths, seed=args.seed, zoom=recipe.get("zoom", 1.6))
    keys = photo_keys(paths, recipe.get("source_weights", {}), args.photos, args.size, args.seed)
    recalibrate(model, photos, keys)
    info = {**json.loads(meta.get("info", "{}")), "bn_recalibrated": {"photos": args.photos, "size": args.size}}
    save_weights(model, args.out, info=info)
    print(f"{args.out}: batch-norm statistics from {args.photos} crops of {len(paths)} photos")


if __name__ == "__main__":
    main()
