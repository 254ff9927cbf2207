"""--backend opencv: OpenCV's VideoCapture/VideoWriter (mp4v video, no audio, no rotation, a
frame rate rounded to a float). `backends.pick_backend` warns whoever gets it."""
from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from .config import VideoError, VideoInfo


class OpenCVReader:
    """Fallback when PyAV is missing: VideoCapture gives frames but no exact rate, no audio, no rotation."""

    def __init__(self, path: Path, start: float = 0.0, duration: float | None = None):
        import cv2
        self.path, self.start, self.duration, self.skipped = path, start, duration, 0
        self.cap = cv2.VideoCapture(str(path))
        ok, first = self.cap.read() if self.cap.isOpened() else (False, None)
        if not ok:
            raise VideoError(f"{path}: not a video OpenCV can read (or it has no frames)")
        fps = self.cap.get(cv2.CAP_PROP_FPS) or 25.0
        rate = Fraction(fps).limit_denominator(1001)  # 29.97002997 -> 30000/1001
        count = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        total = count / fps if count else 0.0
        remaining = max(0.0, total - start)
        duration_s = min(remaining, duration) if duration else remaining
        self.info = VideoInfo(first.shape[1], first.shape[0], rate, 1 / rate, int(round(duration_s * fps)),
                              duration_s)
        self.cap.set(cv2.CAP_PROP_POS_FRAMES, int(round(start * fps)))

    def seconds(self, pts: int) -> float:
        """A frame's time on the source's timeline: its pts is its index from --start."""
        return self.start + float(pts / self.info.rate)

    def frames(self) -> Iterator[tuple[np.ndarray, int, int, int]]:
        import cv2
        limit = self.info.frames if self.duration else math.inf
        index = 0
        while index < limit:
            ok, bgr = self.cap.read()
            if not ok:
                return
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), index, 1, 0
            index += 1

    def close(self) -> None:
        self.cap.release()


class OpenCVWriter:
    def __init__(self, path: Path, info: VideoInfo):
        import cv2
        self.writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(info.rate),
                                      (info.width, info.height))
        if not self.writer.isOpened():
            raise VideoError(f"{path}: OpenCV cannot write this file")
        self.audio = _NoAudio()

    def write(self, rgb: np.ndarray, pts: int, duration: int) -> None:
        import cv2
        self.writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    def finish(self) -> None:
        self.writer.release()

    abort = finish


class _NoAudio:
    summary = "audio dropped (OpenCV backend)"
