"""Tiny generated photos and a tiny training recipe for the training tests (seconds on one CPU thread).

The photos are learnable: their colour is a fixed function of brightness (dark blue, mid red, bright yellow)
over random wavy patterns, so a few steps of training measurably lower every loss."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

TINY_MODEL = {"encoder": "mobilenet_v2", "decoder_channels": [32, 16, 16, 8], "middle_expansion": 0,
              "attention": False, "spectral_norm": True, "blur": True, "head_channels": 8}


def photo(rng: np.random.Generator, h: int = 72, w: int = 88) -> np.ndarray:
    """RGB uint8 whose chroma is a function of its luminance."""
    y, x = np.mgrid[0:h, 0:w] / np.array([h, w], dtype=np.float64)[:, None, None]
    fx, fy, phase = rng.uniform(3, 9), rng.uniform(2, 6), rng.uniform(0, 2 * np.pi)
    lum = 0.5 + 0.45 * np.sin(fx * x + phase) * np.cos(fy * y)
    rgb = np.stack([np.clip(2 * lum, 0, 1), np.clip(2 * lum - 1, 0, 1) ** 0.7, np.clip(1 - 2 * lum, 0, 1)], -1)
    return (np.clip(0.15 + 0.85 * rgb, 0, 1) * 255).astype(np.uint8)


def make_photos(folder: Path, n: int, seed: int = 0, prefix: str = "gen") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = folder / f"{prefix}_{i:03d}.png"
        cv2.imwrite(str(path), photo(rng)[:, :, ::-1])
        paths.append(path)
    return paths


def tiny_settings(data: Path, val: Path, **overrides) -> dict:
    """TrainConfig fields (as in a config.json) for a run of a few seconds at 32–64 px."""
    settings = dict(data=str(data), val=str(val), model=TINY_MODEL, pretrained=False, workers=0, threads=1,
                    batch_size=4, pretrain_steps=12, sizes=[32, 64], size_fractions=[0.5, 0.5], freeze_fraction=0.0,
                    warmup=3, critic_steps=6, gan_steps=6, gan_size=32, critic_width=8, val_render_factor=8, val_every=6,
                    save_every=3, log_every=3, samples=2, lr=3e-3)
    settings.update(overrides)
    return settings
