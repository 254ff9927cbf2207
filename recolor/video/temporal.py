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
- DIS optical flow and the forward–backward occlusion check: see flow.py.
- Warping error: Lai, Huang, Wang, Shechtman, Yumer, Yang, "Learning Blind Video Temporal Consistency",
  ECCV 2018 (there with FlowNet2; here with DIS on the input luminance).
- CDC (colour distribution consistency): Lei & Chen, "Fully Automatic Video Colorization with
  Self-Regularization and Diversity", CVPR 2019; the t+1/t+2/t+4 form used by DeepRemaster-era papers.
- Colourfulness (the third flicker-benchmark number) is `metrics.colourfulness`: Hasler & Süsstrunk 2003.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from ..flow import flow, make_dis, reliable_mask, to_gray8, warp

# Chosen with benchmarks/video_flicker.py on ../shared/data/video: the smallest strength that met the targets
# (warping error -40% or more, colourfulness -10% at most) on both clips: bikes -53% / -1%, cup -42% / -0%
# (0.4 gave only -32% on cup; 0.8 gave -60% / -49% but lags more behind real colour changes).
DEFAULT_SMOOTH = 0.6

CUT_HIST_DISTANCE = 0.5  # Bhattacharyya distance between 64-bin L histograms that marks a cut
CUT_MIN_RELIABLE = 0.2  # fewer reliable flow pixels than this also means "new shot"


# ----------------------------------------------------------------------------------------------- cuts
def histogram_distance(l_a: np.ndarray, l_b: np.ndarray) -> float:
    """Bhattacharyya distance (0 same, 1 disjoint) between 64-bin L histograms: a motion-blind cut detector."""
    ha, hb = (cv2.calcHist([np.ascontiguousarray(l, np.float32)], [0], None, [64], [0, 100.001]) for l in (l_a, l_b))
    return float(cv2.compareHist(ha, hb, cv2.HISTCMP_BHATTACHARYYA))


@dataclass
class CutDetector:
    """Feed each frame's L in order -> whether a new shot starts there (its histogram is far from the previous
    frame's). The film pipeline asks once per frame, on the render-size L, for the smoother and the hint
    tracker alike."""
    _prev: np.ndarray | None = field(default=None, repr=False)

    def __call__(self, l: np.ndarray) -> bool:
        prev, self._prev = self._prev, l
        return prev is not None and prev.shape == l.shape and histogram_distance(prev, l) > CUT_HIST_DISTANCE


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

    def __call__(self, l_small: np.ndarray, ab: np.ndarray, cut: bool = False) -> np.ndarray:
        """L (h, w) in [0, 100] and predicted ab (h, w, 2) at the same size, and whether a shot starts here
        (CutDetector) -> smoothed ab (h, w, 2)."""
        ab = ab.astype(np.float32, copy=False)
        if self.strength == 0.0:
            return ab
        out = ab
        if self._prev_l is not None and self._prev_l.shape == l_small.shape:
            out = self._blend(l_small, ab, cut)
        self._prev_l, self._prev_ab = l_small, out
        return out

    def _blend(self, l_small: np.ndarray, ab: np.ndarray, cut: bool) -> np.ndarray:
        if cut:
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
