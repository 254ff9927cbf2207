"""Colour hints in a film: given for one frame, they hold for the rest of its shot, moving with the picture.

    recolor video reel.mp4 --hints-at 00:01:05 coat.json --hints-at 00:03:10 car.json

A hint set starts at the first frame at or after its time. From there each point follows the picture with
pyramidal Lucas–Kanade flow on luminance (Bouguet 2000, OpenCV's calcOpticalFlowPyrLK) and is dropped when it
is lost or leaves the frame; every point is released at the next scene cut, which the pipeline finds once per
frame for the smoother and this tracker alike (`temporal.CutDetector`). The smoother's dense flow is not
reused because it runs on the encode thread, after the network, and `Colorizer.chroma` holds the hints as it
colours each batch, so they are tracked here, ahead of it. Points are x, y in the frame's pixels as decoded
(before any display rotation).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from .. import color
from ..hints import Hint
from ..flow import to_gray8

TRACK_SIDE = 480  # points are tracked on a copy of L this size (long side): sub-pixel LK, ~1 ms a frame
_LK = dict(winSize=(21, 21), maxLevel=3, criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01))
MAX_LK_ERROR = 30.0  # mean absolute patch difference (of 255) above which a tracked point counts as lost


@dataclass
class HintTracker:
    """Feed frames in order: (full-res L, time in seconds, whether a shot starts there) -> the hints active on
    that frame, or None."""
    schedule: list[tuple[float, list[Hint]]]  # (start time, hints), any order
    _pending: list[tuple[float, list[Hint]]] = field(default_factory=list, repr=False)
    _active: list[Hint] = field(default_factory=list, repr=False)
    _prev: np.ndarray | None = field(default=None, repr=False)  # previous frame's tracking copy (uint8)
    _scale: float = 1.0  # tracking copy pixels per frame pixel

    def __post_init__(self) -> None:
        self._pending = sorted(self.schedule, key=lambda item: item[0])

    def __call__(self, l_full: np.ndarray, seconds: float, cut: bool) -> list[Hint] | None:
        small = self._tracking_copy(l_full)
        if self._active and self._prev is not None:
            self._active = [] if cut else self._follow(small, l_full.shape)
        while self._pending and self._pending[0][0] <= seconds + 1e-6:
            self._active = list(self._pending.pop(0)[1])  # a new set replaces what was active
        self._prev = to_gray8(small)
        return list(self._active) or None

    def _tracking_copy(self, l_full: np.ndarray) -> np.ndarray:
        h, w = l_full.shape[:2]
        self._scale = min(1.0, TRACK_SIDE / max(h, w))
        size = (max(1, round(h * self._scale)), max(1, round(w * self._scale)))
        return color.resize_l(l_full, size) if self._scale < 1 else l_full.astype(np.float32)

    def _follow(self, small: np.ndarray, shape: tuple[int, ...]) -> list[Hint]:
        """Each active point moved along the flow from the previous frame; lost ones and leavers dropped."""
        points = np.array([[h.x * self._scale, h.y * self._scale] for h in self._active], np.float32)[:, None]
        moved, found, error = cv2.calcOpticalFlowPyrLK(self._prev, to_gray8(small), points, None, **_LK)
        height, width = shape[:2]
        kept = []
        for hint, (x, y), ok, err in zip(self._active, moved[:, 0] / self._scale, found[:, 0], error[:, 0]):
            if ok and err < MAX_LK_ERROR and 0 <= x < width and 0 <= y < height:
                kept.append(replace(hint, x=float(x), y=float(y)))
        return kept
