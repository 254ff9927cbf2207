"""The three-thread pipeline: decode, colorize and encode run at once, joined by bounded queues.

    decode thread:  frames -> full-res L, render-size L, scene cut?  ┐ bounded queues, so memory does not
    main thread:    batch of L -> Colorizer.chroma -> a/b             │ grow with the video's length and no
    encode thread:  smooth a/b -> merge with the source L -> encode   ┘ frame ever touches the disk

Scene cuts are found once per frame, in the decode thread, for the smoother and the hint tracker alike.

The network runs on the calling thread (CUDA and the progress callback live there); a failure in any stage sets
one stop event that every stage checks at least once per frame, and is re-raised on the calling thread.
"""
from __future__ import annotations

import contextlib
import itertools
import queue
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np

from .. import color
from ..atomic import temp_path
from .backends import open_reader, open_writer, pick_backend
from .config import VideoConfig, VideoError, VideoResult, check_paths, default_output, first_line, publish_video
from .hinting import HintTracker
from .temporal import CutDetector, TemporalSmoother

_DONE = object()  # end-of-stream marker in the queues


@dataclass
class _Frame:
    l_full: np.ndarray  # (H, W) float32 in [0, 100]
    l_small: np.ndarray  # (h, w): resized to the render size
    cut: bool  # a new shot starts here (temporal.CutDetector)
    pts: int  # in the source time base (OpenCV: the frame index)
    duration: int
    ab: np.ndarray | None = None  # (h, w, 2) at render size, once predicted


def colorize_video(colorizer, source: str | Path, output: str | Path | None = None,
                   config: VideoConfig = VideoConfig(),
                   progress: Callable[[int, int], None] | None = None) -> VideoResult:
    """Colorize a video file. progress(frames_done, frames_expected) is called from the calling thread.

    Raises VideoError (bad input, existing output), and re-raises whatever stops it (Ctrl-C included) after
    deleting the partial output."""
    source = Path(source)
    output = Path(output) if output is not None else default_output(source)
    check_paths(source, output, config.overwrite)
    backend = pick_backend(config.backend)
    reader = open_reader(source, backend, config.start, config.duration)
    tmp = temp_path(output)
    t0 = time.perf_counter()
    try:
        pipeline = Pipeline(colorizer, reader, config, backend, tmp, output, progress)
        # stand-ins for the engine (tests) may offer `chroma` alone
        with getattr(colorizer, "share_cores", contextlib.nullcontext)():
            frames = pipeline.run()
        if frames == 0:
            where = f" after --start {config.start:g} s" if config.start else ""
            raise VideoError(f"{source}: no video frames{where}")
        publish_video(tmp, output, config.overwrite)
    finally:
        reader.close()
        tmp.unlink(missing_ok=True)
    return VideoResult(output, frames, time.perf_counter() - t0, pipeline.smoother.scene_cuts, reader.skipped,
                       pipeline.audio, backend)


class Pipeline:
    """One run of the three stages over an open reader, into the temp file tmp (output names it in errors).

    Holds what the stages share: the queues, the stop event, the smoother (encode thread only) and what the
    report needs (frames written, the audio summary)."""

    def __init__(self, colorizer, reader, config: VideoConfig, backend: str, tmp: Path, output: Path,
                 progress: Callable[[int, int], None] | None = None):
        self.colorizer, self.reader, self.config, self.backend = colorizer, reader, config, backend
        self.tmp, self.output, self.progress = tmp, output, progress
        self.stop = threading.Event()
        self.decoded: queue.Queue = queue.Queue(maxsize=2 * config.batch_size)  # bounded: memory stays flat
        self.colored: queue.Queue = queue.Queue(maxsize=2 * config.batch_size)
        self.smoother = TemporalSmoother(config.smooth)
        self.tracker = HintTracker([(t, list(h)) for t, h in config.hints]) if config.hints else None  # main thread
        self.written, self.audio = 0, ""  # frames encoded so far; what happened to the sound
        self.stages: list[_Stage] = []

    def run(self) -> int:
        """Runs the stages to the end of the reader's frames; returns how many were written (0: none to read)."""
        frames = self.reader.frames()
        first = next(frames, None)  # read before the writer opens: rotation, and "no frames" without a file
        if first is None:
            return 0
        _, first_pts, _, rotation = first
        self.stages = [_Stage(partial(self._decode, itertools.chain([first], frames)), "recolor-decode", self.stop),
                       _Stage(partial(self._encode, rotation, first_pts), "recolor-encode", self.stop)]
        try:
            for stage in self.stages:
                stage.start()
            self._infer()
            _join(self.stages)
            _raise_stage_errors(self.stages)
        except BaseException:
            self.stop.set()  # every stage checks it at least once per frame
            _join(self.stages)  # no timeout: the temp file is deleted only once the encoder has closed it
            raise
        if self.progress is not None:
            self.progress(self.written, self.written)
        return self.written

    def _decode(self, frames) -> None:
        """Decode thread: (RGB, pts, duration, rotation) -> full-res and render-size L and cuts, in order."""
        cuts = CutDetector()
        for rgb, pts, dur, _ in frames:
            if self.stop.is_set():
                return
            l_full = color.luminance(rgb)
            l_small = color.resize_l(l_full, color.render_size(*l_full.shape[:2], self.config.render_factor))
            _put(self.decoded, _Frame(l_full, l_small, cuts(l_small), pts, dur), self.stop)
        _put(self.decoded, _DONE, self.stop)

    def _infer(self) -> None:
        """Main thread: batches of L -> chroma at render size -> the encode queue, in order."""
        done = False
        while not done:
            batch = []
            while len(batch) < self.config.batch_size:
                item = _get(self.decoded, self.stop, self.stages)
                if item is _DONE:
                    done = True
                    break
                batch.append(item)
            if batch:
                self._colorize_batch(batch)
                for item in batch:
                    _put(self.colored, item, self.stop)
            _raise_stage_errors(self.stages)
            if self.progress is not None:
                self.progress(self.written, max(self.reader.info.frames, self.written))
        _put(self.colored, _DONE, self.stop)

    def _colorize_batch(self, batch: list[_Frame]) -> None:
        """One network call: sets each frame's a/b at render size (with the hints that hold on each frame)."""
        hints = None
        if self.tracker is not None:
            hints = [self.tracker(f.l_full, self.reader.seconds(f.pts), f.cut) for f in batch]
        ab = self.colorizer.chroma([f.l_full for f in batch], self.config.render_factor, self.config.batch_size,
                                   hints, l_small=[f.l_small for f in batch])
        for item, item_ab in zip(batch, ab):
            item.ab = item_ab

    def _encode(self, rotation: int, first_pts: int) -> None:
        """Encode thread: smooth, merge and write each frame in order."""
        # This thread alone opens, writes and closes the output, so no other thread can close a container
        # while it is writing; stopped or failing, it aborts the file (colorize_video then deletes it).
        with _write_errors(self.output):
            writer = open_writer(self.backend, self.tmp, self.reader, self.config, rotation, first_pts)
            self.audio, finished = writer.audio.summary, False
            try:
                while not self.stop.is_set() and (item := _get(self.colored, self.stop, [])) is not _DONE:
                    writer.write(self._merge(item), item.pts, item.duration)
                    self.written += 1
                if not self.stop.is_set():
                    writer.finish()
                    finished = True
            finally:
                if not finished:
                    writer.abort()

    def _merge(self, item: _Frame) -> np.ndarray:
        """Smoothed a/b (at render size, where the flow is cheap) on the source's full-res L -> RGB (H, W, 3)."""
        l_small = item.l_small
        if l_small.shape != item.ab.shape[:2]:  # a/b of an out-of-memory retry, at a lower render factor
            l_small = color.resize_l(item.l_full, item.ab.shape[:2])
        ab = self.smoother(l_small, item.ab, item.cut)
        return color.merge_l_ab(item.l_full, ab)


# ----------------------------------------------------------------------------------------------- threads
class _Stage(threading.Thread):
    """A daemon thread whose exception is kept for the main thread to re-raise."""

    def __init__(self, target: Callable[[], None], name: str, stop: threading.Event):
        super().__init__(name=name, daemon=True)
        self._target_fn, self.stop, self.error = target, stop, None

    def run(self) -> None:
        try:
            self._target_fn()
        except BaseException as e:  # noqa: BLE001 - handed to the main thread, which decides
            self.error = e
            self.stop.set()  # unblocks the other stages' queue waits
        finally:  # a bound method of the Pipeline that holds this stage: a reference cycle that kept the reader
            self._target_fn = None  # (FFmpeg's decoder threads, frames) alive until a garbage collection


def _put(q: queue.Queue, item, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def _get(q: queue.Queue, stop: threading.Event, stages: list[_Stage]):
    while True:
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            _raise_stage_errors(stages)
            if stop.is_set():
                return _DONE


def _raise_stage_errors(stages: list[_Stage]) -> None:
    for stage in stages:
        if stage.error is not None:
            raise stage.error


def _join(stages: list[_Stage]) -> None:
    for stage in stages:
        if stage.is_alive():
            stage.join()


@contextlib.contextmanager
def _write_errors(output: Path):
    """An encoder or muxer failure (a full disk, an option FFmpeg refuses) -> one line that names the output."""
    import av
    try:
        yield
    except (av.error.FFmpegError, OSError) as e:
        raise VideoError(f"{output}: cannot write the video ({first_line(e)})") from None
