"""Reference photos: "colour it like this one" as a palette transfer on the predicted chroma.

    recolor image photo.jpg --reference period_photo.jpg

The network's a/b is moved so that its mean and spread per channel match the reference's (Reinhard et al.,
"Color Transfer between Images", 2001, on a/b only: the photo keeps its luminance, and where the network put
structure — sky above, grass below — it stays). The spread ratio is clamped so that a near-gray prediction is
not blown up into noise. Chosen by measurement against the alternatives (benchmarks/README.md, guided colour).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from . import color

SPREAD_LIMITS = (0.5, 2.0)  # how far the per-channel spread of a/b may be scaled
REFERENCE_SIDE = 256  # the reference's statistics are taken on a copy this size (long side)


@dataclass(frozen=True)
class Palette:
    mean: np.ndarray  # (2,) a/b mean of the reference
    std: np.ndarray  # (2,) a/b standard deviation

    @classmethod
    def of(cls, rgb: np.ndarray) -> "Palette":
        """An RGB photo (uint8, uint16 or float in [0, 1]) -> its a/b palette."""
        rgb, _ = color.to_float_rgb(np.asarray(rgb))
        scale = REFERENCE_SIDE / max(rgb.shape[:2])
        if scale < 1:
            rgb = cv2.resize(rgb, (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale))),
                             interpolation=cv2.INTER_AREA)
        ab = color.ab_of(rgb).reshape(-1, 2)
        return cls(ab.mean(axis=0), ab.std(axis=0))

    def apply(self, ab: np.ndarray) -> np.ndarray:
        """(h, w, 2) predicted a/b -> the same, moved to this palette's mean and (clamped) spread."""
        flat = ab.reshape(-1, 2)
        mean, std = flat.mean(axis=0), flat.std(axis=0)
        ratio = np.clip(self.std / np.maximum(std, 1e-3), *SPREAD_LIMITS)
        return ((ab - mean) * ratio + self.mean).astype(np.float32)
