"""What a run starts from, before its first step: the config a resume continues with, the photos (scanned
once, or the run's data.json on resume), the draw weights per source, the state (fresh, resumed, or the
networks of an earlier stage), the perceptual loss and the autocast type. Every way a run cannot start is a
TrainingError that says what to do."""
from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from ..evaluate import source_of
from ..images import find_images
from .checkpoint import load_checkpoint, restore
from .config import RESUMABLE, RUNTIME, TrainConfig, TrainingError
from .data import PhotoIndex, draw_probabilities, scan_photos, split_val
from .distributed import Dist
from .losses import FeatureLoss, PerceptualWeightsError
from .reporting import Reporter
from .state import RunState, new_state


def resume_config(cfg: TrainConfig, given: Iterable[str] | None = None) -> tuple[TrainConfig, dict]:
    """The config a resume continues with: the run's stored one, where it executes (RUNTIME) from `cfg`, and the
    settings named in `given` (default: those of `cfg` not at their default value) that differ from the run's.
    Those in RESUMABLE are applied; any other is refused, since training on silently with a setting other than
    the one asked for is worse than stopping. -> (config, {setting: (stored value, new value)})."""
    path = Path(cfg.out) / "last.ckpt"
    if not path.exists():
        raise TrainingError(f"--resume: no checkpoint at {path}")
    stored = TrainConfig.from_dict(load_checkpoint(path)["config"])
    defaults = TrainConfig(data="", out="")
    names = [f.name for f in dataclasses.fields(cfg) if f.name not in RUNTIME]
    if given is None:
        given = [k for k in names if getattr(cfg, k) != getattr(defaults, k)]
    changes = {k: (getattr(stored, k), getattr(cfg, k)) for k in names
               if k in given and getattr(cfg, k) != getattr(stored, k)}
    refused = [f"{k} (the run has {old!r}, asked {new!r})" for k, (old, new) in changes.items() if k not in RESUMABLE]
    if refused:
        raise TrainingError(f"--resume continues a run as it was set up; it cannot change {'; '.join(refused)}. "
                            f"Only {', '.join(sorted(RESUMABLE))} can change on resume; for anything else start "
                            f"a new run (another --out)")
    runtime = {k: getattr(cfg, k) for k in RUNTIME}
    return dataclasses.replace(stored, **runtime, **{k: new for k, (_, new) in changes.items()}), changes


def photo_index(cfg: TrainConfig, ctx: Dist, out: Path, resume: bool) -> tuple[list[str], list[str], PhotoIndex]:
    """Scan the folders once (or reuse the run's data.json on resume): (train files, val files, index)."""
    saved = out / "data.json"
    if resume and saved.exists():
        d = json.loads(saved.read_text())
        return d["train"], d["val"], PhotoIndex(d["train"] + d["val"], d["gray"], d["unreadable"], d.get("toned", []))
    root = Path(cfg.data)
    if not root.is_dir():
        raise TrainingError(f"--data {cfg.data}: not a folder")
    index = scan_photos(find_images(root), skip_toned=True)  # a separate --val keeps them: comparable scores
    if not index.photos:
        raise TrainingError(f"--data {cfg.data}: no usable colour photos ({index.summary()})")
    if cfg.val:
        if not Path(cfg.val).is_dir():
            raise TrainingError(f"--val {cfg.val}: not a folder")
        train_paths, val_paths = index.photos, scan_photos(find_images(Path(cfg.val))).photos
    else:
        train_paths, val_paths = split_val(index.photos, cfg.val_fraction, cfg.seed, cfg.val_max)
    if ctx.main:
        saved.write_text(json.dumps({"train": train_paths, "val": val_paths, "gray": index.gray,
                                     "toned": index.toned, "unreadable": index.unreadable}, indent=1))
    return train_paths, val_paths, index


def source_draws(paths: list[str], weights: dict[str, float], reporter: Reporter) -> np.ndarray | None:
    """Draw probabilities for `source_weights`, and the share of the draws each source then gets."""
    try:
        p = draw_probabilities(paths, weights)
    except ValueError as e:
        raise TrainingError(f"--source-weight: {e}") from None
    if p is not None:
        shares: dict[str, float] = defaultdict(float)
        for path, q in zip(paths, p):
            shares[source_of(path)] += q
        reporter.info("draws per source: " + ", ".join(f"{s} {100 * q:.0f}%" for s, q in sorted(shares.items())))
    return p


def prepare_state(cfg: TrainConfig, ctx: Dist, out: Path, resume: bool) -> RunState:
    """A fresh state, a resumed one, or (for a later stage in an existing run) the networks of the last one."""
    ckpt_path = out / "last.ckpt"
    state = new_state(cfg, ctx.device)
    if cfg.amp and ctx.device.type == "cuda" and not torch.cuda.is_bf16_supported():
        state.scaler = torch.amp.GradScaler("cuda")
    if resume:
        restore(state, load_checkpoint(ckpt_path), cfg)
    elif ckpt_path.exists():
        if cfg.stage in ("all", "pretrain"):
            raise TrainingError(f"{out} already holds a run: continue it with --resume, or use a new --out")
        restore(state, load_checkpoint(ckpt_path), cfg, weights_only=True)
    elif cfg.stage in ("critic", "gan"):
        raise TrainingError(f"--stage {cfg.stage} builds on a pretrained generator: run --stage pretrain "
                            f"with --out {out} first")
    return state


def make_feature_loss(cfg: TrainConfig, device: torch.device, reporter: Reporter) -> FeatureLoss | None:
    if cfg.perceptual == "none" or cfg.feature_weight == 0:
        return None
    if not cfg.pretrained:
        reporter.info("note: --no-pretrained: the perceptual network has random weights (for tests only)")
    with torch.random.fork_rng(devices=[]):  # its own seed: a resumed run must build the very same network
        torch.manual_seed(cfg.seed + 1)
        try:
            return FeatureLoss(cfg.perceptual, pretrained=cfg.pretrained).to(device)
        except PerceptualWeightsError as e:
            raise TrainingError(str(e)) from None


def amp_dtype_for(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """bf16 where the hardware has it (CPUs with AVX-512 BF16/AMX: 1.7× here; without, it is emulated and
    slower than fp32), fp16 on older GPUs (with a GradScaler), none on MPS."""
    if not cfg.amp or device.type == "mps":
        return None
    if device.type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return None
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16
