"""What changes with the step: steps per stage, the crop size (progressive resizing: Karras et al.'s
progressive growing, fastai's progressive resizing), the learning rate (linear warmup, then cosine decay as in
Loshchilov & Hutter's SGDR), the frozen-then-trained pretrained encoder (Howard & Ruder 2018), and the
exponential moving average of the weights (Polyak averaging) that is what a run saves."""
from __future__ import annotations

import math

import torch

from ..model import Generator
from .config import TrainConfig


def stage_steps(cfg: TrainConfig, stage: str) -> int:
    return {"pretrain": cfg.pretrain_steps, "critic": cfg.critic_steps, "gan": cfg.gan_steps}[stage]


def trains_generator(stage: str) -> bool:
    """Pretraining and the GAN stage move the generator: their steps update its average and are validated.
    The critic stage trains the critic alone, on the fixed generator."""
    return stage != "critic"


def size_at(cfg: TrainConfig, stage: str, step: int) -> int:
    """Progressive resizing in pretraining; the GAN stages train at gan_size."""
    if stage != "pretrain":
        return cfg.gan_size
    edge = 0.0
    for size, fraction in zip(cfg.sizes, cfg.size_fractions):
        edge += fraction * cfg.pretrain_steps
        if step < edge:
            return size
    return cfg.sizes[-1]


def lr_factor(cfg: TrainConfig, step: int) -> float:
    """Linear warmup, then cosine decay to 2% of the peak over pretraining."""
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.pretrain_steps - cfg.warmup)
    return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def encoder_frozen(cfg: TrainConfig, step: int) -> bool:
    return cfg.pretrained and step < cfg.freeze_fraction * cfg.pretrain_steps


@torch.no_grad()
def update_ema(ema: Generator | None, model: Generator, decay: float, step: int) -> None:
    """Polyak/EMA average of the parameters; a short warmup per stage so a new stage shows up quickly.
    Buffers (batch-norm statistics, spectral-norm vectors) are copied, not averaged."""
    if ema is None:
        return
    d = min(decay, (1 + step) / (10 + step))
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p.detach(), 1 - d)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)
