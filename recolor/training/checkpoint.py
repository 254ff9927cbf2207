"""`last.ckpt`: everything needed to resume a run exactly (networks, optimizers, scaler, torch's RNG state,
stage and step, the config), written atomically so a kill at any moment leaves the previous one intact, read
with `torch.load(weights_only=True)` so no pickle runs; and the log trimmed back to it on resume."""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..atomic import replacing
from .config import STAGES, TrainConfig
from .state import RunState, make_optimizers


def checkpoint_dict(state: RunState, cfg: TrainConfig) -> dict:
    return {"config": cfg.to_dict(), "stage": state.stage, "step": state.step, "done": list(state.done),
            "best": state.best, "best_at": state.best_at, "generator": state.generator.state_dict(),
            "ema": state.ema.state_dict() if state.ema is not None else None,
            "critic": state.critic.state_dict(),
            "g_opt": state.g_opt.state_dict() if state.g_opt else None,
            "c_opt": state.c_opt.state_dict() if state.c_opt else None,
            "scaler": state.scaler.state_dict() if state.scaler else None,
            "torch_rng": torch.get_rng_state()}


def save_checkpoint(path: Path, payload: dict) -> None:
    """Write to a temp file, fsync, rename: a kill at any moment leaves the previous checkpoint intact."""
    with replacing(path) as tmp, open(tmp, "wb") as f:
        torch.save(payload, f)
        f.flush()
        os.fsync(f.fileno())


def load_checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def restore(state: RunState, ckpt: dict, cfg: TrainConfig, weights_only: bool = False) -> None:
    """Load a checkpoint into a fresh state; `weights_only`: just the networks (to start a later stage)."""
    state.generator.load_state_dict(ckpt["generator"])
    if state.ema is not None:
        state.ema.load_state_dict(ckpt["ema"] if ckpt["ema"] is not None else ckpt["generator"])
    state.critic.load_state_dict(ckpt["critic"])
    state.done, state.best, state.best_at = tuple(ckpt["done"]), ckpt["best"], ckpt["best_at"]
    if weights_only:
        return
    state.stage, state.step = ckpt["stage"], ckpt["step"]
    make_optimizers(state, cfg, state.stage)
    if ckpt["g_opt"]:
        state.g_opt.load_state_dict(ckpt["g_opt"])
    if ckpt["c_opt"]:
        state.c_opt.load_state_dict(ckpt["c_opt"])
    # the config's learning rates, not the stored ones: a resume may change them (pretraining sets its lr
    # every step anyway)
    for group in state.c_opt.param_groups:
        group["lr"] = cfg.critic_lr
    if state.stage != "pretrain":
        for group in state.g_opt.param_groups:
            group["lr"] = cfg.gan_lr
    if ckpt["scaler"] and state.scaler is not None:
        state.scaler.load_state_dict(ckpt["scaler"])
    torch.set_rng_state(ckpt["torch_rng"])


def trim_metrics(path: Path, state: RunState) -> None:
    """Drop log lines written after the checkpoint we resume from: they will be written again."""
    if not path.exists():
        return
    here = (STAGES.index(state.stage), state.step)
    keep = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            rec = json.loads(line)
            at = (STAGES.index(rec["stage"]), rec["step"])
        except (ValueError, KeyError, TypeError):  # a line torn by a kill mid-write: it is written again
            continue
        if at <= here:
            keep.append(line)
    path.write_text("".join(k + "\n" for k in keep))
