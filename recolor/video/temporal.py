"""Temporal consistency for video: smooth predicted chroma along motion (flicker is measured in metrics.py).

A per-frame colorizer flickers: the same shirt is a slightly different colour in every frame. Only chroma
(a/b) is smoothed; luminance always stays the source's. For each frame t (at the network's render size):

    flow_b = DIS(L_t -> L_t-1), flow_f = DIS(L_t-1 -> L_t)       optical flow on luminance only
    warped = S_t-1 sampled at x + flow_b(x)                         previous *smoothed* chroma, moved here
    M(x)   = forward-backward consistent ∧ luminance matches ∧ inside the frame   (reliable pixels)
    S_t    = ab_t + strength · M · (warped − ab_t)                 recursive blend along trajectories

so where the flow is trusted the output is an exponential moving average along motion trajectories, and
where it is not (occlusions, fast motion, new objects) the current prediction is kept. A scene cut
(L histogram change, or almost no reliable flow) resets the state, so colour never bleeds across cuts.

References:
- DIS optical flow: Kroeger, Timofte, Dai, Van Gool, "Fast Optical Flow using Dense Inverse Search", ECCV 2016
  (OpenCV's `DISOpticalFlow`).
- Forward–backward occlusion check: Sundaram, Brox, Keutzer, "Dense point trajectories by GPU-accelerated
  large displacement optical flow", ECCV 2010; as used by Ruder, Dosovitskiy, Brox, "Artistic style transfer
  for videos", GCPR 2016.
- Warping error: Lai, Huang, Wang, Shechtman, Yumer, Yang, "Learning Blind Video Temporal Consistency",
  ECCV 2018 (there with FlowNet2; here with DIS on the input luminance).
- CDC (colour distribution consistency): Lei & Chen, "Fully Automatic Video Colorization with
  Self-Regularization and Diversity", CVPR 2019; the t+1/t+2/t+4 form used by DeepRemaster-era papers.
- Colourfulness (the third flicker-benchmark number) is `metrics.colourfulness`: Hasler & Süsstrunk 2003.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np

# Chosen with benchmarks/video_flicker.py on ../shared/data/video: the smallest strength that met the targets
# (warping error -40% or more, colourfulness -10% at most) on both clips: bikes -53% / -1%, cup -42% / -0%
# (0.4 gave only -32% on cup; 0.8 gave -60% / -49% but lags more behind real colour changes).
DEFAULT_SMOOTH = 0.6

# Sundaram et al.'s |fwd + bwd|² < α(|fwd|² + |bwd|²) + β (pixels²): their α, and β doubled from 0.5 because
# DIS at render size is less exact than their flow; measured slightly better on both benchmark clips.
FB_ALPHA, FB_BETA = 0.01, 1.0
L_TOLERANCE = 10.0  # a warped pixel whose L differs by more than this (of 100) is not the same surface
CUT_HIST_DISTANCE = 0.5  # Bhattacharyya distance between 64-bin L histograms that marks a cut
CUT_MIN_RELIABLE = 0.2  # fewer reliable flow pixels than this also means "new shot"


# ----------------------------------------------------------------------------------------------- flow
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


def histogram_distance(l_a: np.ndarray, l_b: np.ndarray) -> float:
    """Bhattacharyya distance (0 same, 1 disjoint) between 64-bin L histograms: a motion-blind cut detector."""
    ha, hb = (cv2.calcHist([np.ascontiguousarray(l, np.float32)], [0], None, [64], [0, 100.001]) for l in (l_a, l_b))
    return float(cv2.compareHist(ha, hb, cv2.HISTCMP_BHATTACHARYYA))


# ----------------------------------------------------------------------------------------------- smoothing
@dataclass
class TemporalSmoother:
    """Recursive flow-guided smoothing of a/b. Feed frames in order; holds only the previous frame's L and a/b.

    strength 0 returns every prediction unchanged (frame-by-frame colorization); 1 would propagate the first
    frame's colours wherever the flow holds."""
    strength: float = DEFAULT_SMOOTH
    scene_cuts: int = 0
    _prev_l: np.ndarray | None = field(default=None, repr=False)  # (h, w) float32
    _prev_ab: np.ndarray | None = field(default=None, repr=False)  # (h, w, 2) float32
    _dis: cv2.DISOpticalFlow | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"smoothing strength {self.strength} is out of range: use 0–1")

    def reset(self) -> None:
        self._prev_l = self._prev_ab = None

    def __call__(self, l_small: np.ndarray, ab: np.ndarray) -> np.ndarray:
        """L (h, w) in [0, 100] and predicted ab (h, w, 2) at the same size -> smoothed ab (h, w, 2)."""
        ab = ab.astype(np.float32, copy=False)
        if self.strength == 0.0:
            return ab
        out = ab
        if self._prev_l is not None and self._prev_l.shape == l_small.shape:
            out = self._blend(l_small, ab)
        self._prev_l, self._prev_ab = l_small, out
        return out

    def _blend(self, l_small: np.ndarray, ab: np.ndarray) -> np.ndarray:
        if histogram_distance(self._prev_l, l_small) > CUT_HIST_DISTANCE:
            self.scene_cuts += 1
            return ab
        if self._dis is None:
            self._dis = make_dis()
        cur8, prev8 = to_gray8(l_small), to_gray8(self._prev_l)
        flow_b, flow_f = flow(self._dis, cur8, prev8), flow(self._dis, prev8, cur8)
        mask = reliable_mask(flow_b, flow_f, l_small, warp(self._prev_l, flow_b))
        if mask.mean() < CUT_MIN_RELIABLE:  # nothing carries over: a cut the histogram missed, or chaos
            self.scene_cuts += 1
            return ab
        # A soft edge stops a hard seam where trusted and untrusted regions meet.
        weight = self.strength * cv2.GaussianBlur(mask.astype(np.float32), (5, 5), 0)
        warped = warp(self._prev_ab, flow_b)
        return ab + weight[..., None] * (warped - ab)
