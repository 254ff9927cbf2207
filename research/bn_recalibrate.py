"""A weights file with its batch-norm statistics measured again on training photos: for a model made by
mix_weights.py, whose statistics are the mean of its parents' and fit neither.

    python research/bn_recalibrate.py IN.safetensors OUT.safetensors --data runs/data/train-v3 \
        [--recipe research/recipes/people-f.json] [--photos 1024] [--size 224]

Averaged weights give activations of another mean and spread than either parent's, so the averaged running
statistics normalise them wrongly; SWA (Izmailov et al. 2018) recomputes them after averaging for that reason,
and REPAIR (Jordan et al. 2022) shows the collapse it prevents in merged networks. Here every BatchNorm's
statistics are reset and measured as a plain mean over `--photos` training crops, drawn as the recipe draws
them (the trainer's batch sampler with its source weights and zoom; gray and toned photos, which a training
run's scan skips, are not skipped here), with the rest of the network in eval mode. The weights are unchanged.
Set the decoding afterwards with decode_variant.py, as for any mix.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch

from recolor.images import find_images
from recolor.training.data import ColorPhotos, StepBatches, draw_probabilities
from recolor.weights import load_model, save_weights

BATCH = 16  # crops per forward pass; the statistics are a mean over all of them


@torch.no_grad()
def recalibrate(model: torch.nn.Module, photos: ColorPhotos, batches: StepBatches) -> None:
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative mean over all batches, not an exponential one
        m.train()
    for keys in batches:
        model(torch.from_numpy(np.stack([photos[k][0] for k in keys])))
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
    model, _, meta = load_model(args.src)
    paths = [str(p) for p in find_images(Path(args.data))]
    photos = ColorPhotos(paths, seed=args.seed, zoom=recipe.get("zoom", 1.6))
    batches = StepBatches(len(paths), BATCH, args.seed, range(math.ceil(args.photos / BATCH)), lambda _: args.size,
                          p=draw_probabilities(paths, recipe.get("source_weights", {})))
    recalibrate(model, photos, batches)
    crops = BATCH * len(batches)  # --photos rounded up to whole batches
    info = {**json.loads(meta.get("info", "{}")), "bn_recalibrated": {"photos": crops, "size": args.size}}
    save_weights(model, args.out, info=info)
    print(f"{args.out}: batch-norm statistics from {crops} crops of {len(paths)} photos")


if __name__ == "__main__":
    main()
