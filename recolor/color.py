"""Colour maths: CIE Lab conversions, render sizes and merging predicted chroma with the original luminance.

Everything here is pure numpy/OpenCV on float32 arrays (OpenCV's float32 Lab is ~10x faster than skimage's):
L is in [0, 100], a/b roughly in [-110, 110], RGB in [0, 1], images are (H, W, C) in RGB order.
"""
from __future__ import annotations

import cv2
import numpy as np

RENDER_FACTOR_MIN, RENDER_FACTOR_MAX = 7, 64


def to_float_rgb(image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Any gray/RGB/RGBA image (uint8, uint16 or float in [0, 1]) -> (RGB float32 in [0, 1], alpha or None)."""
    if image.dtype == np.uint8:
        img = image.astype(np.float32) / 255.0
    elif image.dtype == np.uint16:
        img = image.astype(np.float32) / 65535.0
    elif np.issubdtype(image.dtype, np.floating):
        img = np.clip(image.astype(np.float32), 0.0, 1.0)
    else:
        raise ValueError(f"unsupported pixel type {image.dtype} (expected uint8, uint16 or float)")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        return np.repeat(img[:, :, None], 3, axis=2), None
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError(f"unsupported image shape {image.shape} (expected H×W, H×W×3 or H×W×4)")
    alpha = img[:, :, 3].copy() if img.shape[2] == 4 else None
    return np.ascontiguousarray(img[:, :, :3]), alpha


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32 sRGB in [0, 1] -> (H, W, 3) float32 Lab."""
    return cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.float32), cv2.COLOR_RGB2Lab)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32 Lab -> (H, W, 3) float32 sRGB, not clipped."""
    return cv2.cvtColor(np.ascontiguousarray(lab, dtype=np.float32), cv2.COLOR_Lab2RGB)


def luminance(image: np.ndarray) -> np.ndarray:
    """L channel (H, W) float32 in [0, 100] of any supported image."""
    rgb, _ = to_float_rgb(image)
    return rgb_to_lab(rgb)[:, :, 0]


def check_render_factor(render_factor: int) -> int:
    if not RENDER_FACTOR_MIN <= int(render_factor) <= RENDER_FACTOR_MAX:
        raise ValueError(
            f"render factor {render_factor} is out of range: use {RENDER_FACTOR_MIN}–{RENDER_FACTOR_MAX} "
            f"(render size = factor × 16 px)")
    return int(render_factor)


def render_size(height: int, width: int, render_factor: int) -> tuple[int, int]:
    """(h, w) the network sees: area ≈ (rf·16)², the input's aspect ratio kept, sides multiples of 32.

    DeOldify stretches every input to an rf·16 square; keeping the aspect ratio avoids squashing
    faces and horizons and measured no worse on val (see benchmarks/README.md)."""
    target = check_render_factor(render_factor) * 16
    scale = target / np.sqrt(height * width)
    h = max(32, int(round(height * scale / 32)) * 32)
    w = max(32, int(round(width * scale / 32)) * 32)
    return h, w


def resize_l(l_full: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an L plane to size=(h, w); INTER_AREA when shrinking avoids aliasing."""
    h, w = size
    shrink = h * w < l_full.shape[0] * l_full.shape[1]
    return cv2.resize(l_full, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def upsample_ab(ab: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w, 2) chroma -> (H, W, 2); chroma is smooth, so bilinear is enough and fast."""
    h, w = size
    if ab.shape[:2] == (h, w):
        return ab
    return cv2.resize(ab, (w, h), interpolation=cv2.INTER_LINEAR)


def _out_of_gamut(rgb: np.ndarray, eps: float = 1e-4) -> np.ndarray:
    return ((rgb < -eps) | (rgb > 1 + eps)).any(axis=-1)


def fit_chroma_to_gamut(l: np.ndarray, ab: np.ndarray, steps: int = 7) -> np.ndarray:
    """Shrink (a, b) towards gray, per pixel, just enough for L·a·b to fit in sRGB.

    Clipping RGB instead would change the luminance; scaling chroma keeps L exact (hue kept too).
    Bisection on the scale, only over the pixels that are out of gamut (usually a few percent)."""
    rgb = lab_to_rgb(np.dstack([l, ab]))
    bad = _out_of_gamut(rgb)
    if not bad.any():
        return ab
    l_bad, ab_bad = l[bad], ab[bad]  # (N,), (N, 2)
    lo, hi = np.zeros(len(l_bad), np.float32), np.ones(len(l_bad), np.float32)
    for _ in range(steps):
        mid = (lo + hi) / 2
        lab = np.concatenate([l_bad[:, None], ab_bad * mid[:, None]], axis=1)[None]  # (1, N, 3)
        ok = ~_out_of_gamut(lab_to_rgb(lab)[0])
        lo = np.where(ok, mid, lo)
        hi = np.where(ok, hi, mid)
    ab = ab.copy()
    ab[bad] = ab_bad * lo[:, None]
    return ab


def merge_l_ab(l_full: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """Full-resolution L (H, W) + chroma at any size (h, w, 2) -> RGB uint8 (H, W, 3) with the same L."""
    ab = upsample_ab(ab.astype(np.float32), l_full.shape[:2])
    ab = fit_chroma_to_gamut(l_full, ab)
    rgb = lab_to_rgb(np.dstack([l_full, ab]))
    return to_uint8(rgb)


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def ab_of(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 2) float32 chroma of an RGB float image."""
    return rgb_to_lab(rgb)[:, :, 1:]
