"""Dense optical flow on luminance, and which of its vectors to trust: shared by the film's flicker remover
(video/temporal.py) and the flicker metrics (metrics.py), so each measures what the other does.

References:
- DIS optical flow: Kroeger, Timofte, Dai, Van Gool, "Fast Optical Flow using Dense Inverse Search", ECCV 2016
  (OpenCV's `DISOpticalFlow`).
- Forward–backward occlusion check: Sundaram, Brox, Keutzer, "Dense point trajectories by GPU-accelerated
  large displacement optical flow", ECCV 2010; as used by Ruder, Dosovitskiy, Brox, "Artistic style transfer
  for videos", GCPR 2016.
"""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

# Sundaram et al.'s |fwd + bwd|² < α(|fwd|² + |bwd|²) + β (pixels²): their α, and β doubled from 0.5 because
# DIS at render size is less exact than their flow; measured slightly better on both benchmark clips.
FB_ALPHA, FB_BETA = 0.01, 1.0
L_TOLERANCE = 10.0  # a warped pixel whose L differs by more than this (of 100) is not the same surface


def make_dis() -> cv2.DISOpticalFlow:
    # FAST: on both benchmark clips its smoothing was as good as MEDIUM's (warping error within 10%) at half
    # the cost (~10 ms per flow at render size on one core); ULTRAFAST was visibly worse.
    return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)


def to_gray8(l: np.ndarray) -> np.ndarray:
    """L in [0, 100] -> uint8, what DIS takes."""
    return np.clip(l * 2.55 + 0.5, 0, 255).astype(np.uint8)


def flow(dis: cv2.DISOpticalFlow, src8: np.ndarray, dst8: np.ndarray) -> np.ndarray:
    """(H, W, 2) flow F with src(x) ≈ dst(x + F(x))."""
    return dis.calc(src8, dst8, None)


@lru_cache(maxsize=4)
def pixel_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel's x and y (float32, read-only): made once per frame size, not once per warp."""
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    gx.flags.writeable = gy.flags.writeable = False
    return gx, gy


def warp(image: np.ndarray, flow_field: np.ndarray) -> np.ndarray:
    """Sample image at x + flow(x): brings a neighbouring frame's content into this frame's geometry."""
    gx, gy = pixel_grid(*flow_field.shape[:2])
    return cv2.remap(image, gx + flow_field[..., 0], gy + flow_field[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def squared_length(v: np.ndarray) -> np.ndarray:
    """|v|² of (H, W, 2) vectors; einsum, because np.sum over a last axis of 2 is several times slower."""
    return np.einsum("...k,...k->...", v, v)


def reliable_mask(flow_b: np.ndarray, flow_f: np.ndarray, l_cur: np.ndarray, l_prev_warped: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels of frame t whose backward flow is trustworthy.

    flow_b: t -> t-1, flow_f: t-1 -> t. A pixel is kept if going back and forth returns to it (not occluded),
    its luminance matches the warped previous frame (same surface), and it lands inside the previous frame."""
    h, w = flow_b.shape[:2]
    flow_f_back = warp(flow_f, flow_b)  # forward flow at the point each pixel came from
    round_trip = squared_length(flow_b + flow_f_back)
    consistent = round_trip < FB_ALPHA * (squared_length(flow_b) + squared_length(flow_f_back)) + FB_BETA
    same_surface = np.abs(l_cur - l_prev_warped) < L_TOLERANCE
    gx, gy = pixel_grid(h, w)
    x, y = gx + flow_b[..., 0], gy + flow_b[..., 1]
    inside = (x > -0.5) & (x < w - 0.5) & (y > -0.5) & (y < h - 0.5)  # within half a pixel: border replicate is fine
    return consistent & same_surface & inside
