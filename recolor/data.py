"""Training data: any folder of colour photos -> (L, ab) crops as tensors.

Augmentation: random scale and crop, horizontal flip, mild luminance jitter (a gamma on L, chroma kept),
optional Gaussian noise on L (teaches the model to ignore grain, which steadies video).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .color import rgb_to_lab


def load_rgb(path: Path) -> np.ndarray | None:
    """File -> RGB float32 in [0, 1], or None if it cannot be decoded."""
    data = np.fromfile(path, dtype=np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        return None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler & Süsstrunk (2003) colourfulness of an RGB image in [0, 1], on the 0-255 scale."""
    r, g, b = (rgb[..., i].astype(np.float64) * 255.0 for i in range(3))
    rg, yb = r - g, 0.5 * (r + g) - b
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def random_crop(rgb: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Scale so the shorter side is in [size, 1.5·size] (whole-scene context), then crop size×size."""
    h, w = rgb.shape[:2]
    scale = size * rng.uniform(1.0, 1.5) / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    rgb = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    y, x = rng.integers(0, nh - size + 1), rng.integers(0, nw - size + 1)
    return rgb[y:y + size, x:x + size]


def center_fit(rgb: np.ndarray, size: int) -> np.ndarray:
    """Deterministic view for validation: shorter side to size, centre crop."""
    h, w = rgb.shape[:2]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    rgb = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
    y, x = (nh - size) // 2, (nw - size) // 2
    return rgb[y:y + size, x:x + size]


def to_l_ab(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RGB (S, S, 3) -> L (1, S, S), ab (2, S, S), float32 channel-first."""
    lab = rgb_to_lab(rgb)
    return np.ascontiguousarray(lab[None, :, :, 0]), np.ascontiguousarray(lab[:, :, 1:].transpose(2, 0, 1))


class ColorPhotos:
    """A map-style dataset (torch DataLoader compatible) of random (L, ab) crops from photo files."""

    def __init__(self, paths: list[Path], size: int, augment: bool = True, noise: float = 0.0, seed: int = 0):
        self.paths, self.size, self.augment, self.noise, self.seed = list(paths), size, augment, noise, seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        # seeded by (seed, epoch, index): the same run sees the same crops, also after a resume
        rng = np.random.default_rng([self.seed, self.epoch, index])
        rgb = None
        for attempt in range(len(self.paths)):
            rgb = load_rgb(self.paths[(index + attempt) % len(self.paths)])
            if rgb is not None:
                break
        if rgb is None:
            raise RuntimeError("no readable image in the dataset")
        if not self.augment:
            return to_l_ab(center_fit(rgb, self.size))
        rgb = random_crop(rgb, self.size, rng)
        if rng.random() < 0.5:
            rgb = rgb[:, ::-1]
        l, ab = to_l_ab(rgb)
        l = 100.0 * (l / 100.0) ** rng.uniform(0.8, 1.25)  # luminance jitter; chroma is what it was
        if self.noise > 0:
            l = l + rng.normal(0.0, rng.uniform(0, self.noise), l.shape).astype(np.float32)
        return np.clip(l, 0, 100).astype(np.float32), ab
