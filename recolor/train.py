"""Training a generator on a folder of colour photos.

Stage `pretrain`: pixel loss (smooth L1 on ab) on random crops, AdamW with warmup + cosine decay,
bf16 autocast on CPU and fp16/bf16 on CUDA. Runs live in `runs/NAME/`: config.json, metrics.jsonl,
last.ckpt (everything needed to resume exactly), model.safetensors (loadable by `recolor image --model`).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .data import ColorPhotos
from .images import find_images
from .model import MODELS, apply_spectral_norm, create_model
from .weights import save_weights


@dataclass(frozen=True)
class TrainConfig:
    data: str
    out: str
    model: str = "recolor-small"
    size: int = 128
    batch_size: int = 16
    steps: int = 4000
    lr: float = 1e-3
    weight_decay: float = 1e-2
    warmup: int = 200
    workers: int = 1
    seed: int = 0
    amp: bool = True
    pretrained_encoder: bool = True
    noise: float = 2.0
    save_every: int = 250
    log_every: int = 25


def pick_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def save_checkpoint(path: Path, state: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state()[1].tolist(), "python": random.getstate()}


def train(cfg: TrainConfig, resume: bool = False) -> Path:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    device = pick_device()
    paths = find_images(Path(cfg.data))
    if not paths:
        raise ValueError(f"no images found under {cfg.data}")
    model = apply_spectral_norm(create_model(MODELS[cfg.model], pretrained_encoder=cfg.pretrained_encoder and not resume))
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step = 0
    ckpt_path = out / "last.ckpt"
    if resume and ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        step = ckpt["step"]
    (out / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
    dataset = ColorPhotos(paths, cfg.size, augment=True, noise=cfg.noise, seed=cfg.seed)
    amp_dtype = torch.bfloat16 if device.type == "cpu" or torch.cuda.is_bf16_supported() else torch.float16
    log = open(out / "metrics.jsonl", "a")
    t0, seen = time.time(), 0
    while step < cfg.steps:
        dataset.epoch = step // max(1, len(dataset) // cfg.batch_size)
        gen = torch.Generator().manual_seed(cfg.seed * 100003 + dataset.epoch)
        loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True, generator=gen,
                                             num_workers=cfg.workers, drop_last=True, persistent_workers=False)
        skip = step % max(1, len(dataset) // cfg.batch_size)
        for i, (l, ab) in enumerate(loader):
            if i < skip:
                continue
            l, ab = l.to(device), ab.to(device)
            for group in opt.param_groups:
                group["lr"] = lr_at(step, cfg)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=cfg.amp):
                pred = model(l)
            loss = F.smooth_l1_loss(pred.float() / 100, ab / 100, beta=0.02)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at step {step}; last good checkpoint: {ckpt_path}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            seen += len(l)
            if step % cfg.log_every == 0:
                rec = {"step": step, "loss": round(loss.item(), 5), "lr": lr_at(step, cfg),
                       "img_per_s": round(seen / (time.time() - t0), 2)}
                log.write(json.dumps(rec) + "\n")
                log.flush()
                print(rec, flush=True)
            if step % cfg.save_every == 0 or step == cfg.steps:
                save_checkpoint(ckpt_path, {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step})
                save_weights(model, out / "model.safetensors", info={"steps": step, "train": dataclasses.asdict(cfg)})
            if step >= cfg.steps:
                break
    return out / "model.safetensors"


if __name__ == "__main__":
    import argparse
    p = argparse.ArgumentParser()
    for f in dataclasses.fields(TrainConfig):
        p.add_argument("--" + f.name.replace("_", "-"), type=type(f.default) if f.default is not dataclasses.MISSING else str,
                       default=f.default if f.default is not dataclasses.MISSING else None)
    p.add_argument("--resume", action="store_true")
    a = vars(p.parse_args())
    resume = a.pop("resume")
    a = {k: (v if not isinstance(dataclasses.fields(TrainConfig)[0].type, bool) else v) for k, v in a.items()}
    print(train(TrainConfig(**a), resume=resume))
