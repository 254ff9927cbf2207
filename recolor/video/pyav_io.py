"""Video I/O through FFmpeg (PyAV): any container FFmpeg reads in, H.264 (libx264, yuv420p) out.

The output keeps the source's exact time base and per-frame timestamps (29.97 stays 30000/1001, the frame count
and duration stay the same; broken source timestamps become even ones at the source's rate), its rotation
(display matrix), sample aspect ratio and colour tags (BT.709 for untagged HD); the sound goes through `audio.py`.
"""
from __future__ import annotations

import collections
import logging
import math
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from .audio import AudioCopy
from .config import UNSPECIFIED, VideoConfig, VideoError, VideoInfo, first_line

log = logging.getLogger("recolor")

_AUDIO_LEAD_S = 1.0  # mux audio up to this far ahead of the video, so the muxer can interleave
# Decoded frames held back before their timestamps are fixed, so broken timestamps are noticed before any frame
# of the run is written: B-frames muxed with pts = dts come out of order within x264's longest B-frame run (16).
_LOOKAHEAD = 16
# FFmpeg's AVColorSpace values of the YUV matrices swscale converts to, and swscale's names for them.
_MATRICES = {1: "ITU709", 4: "FCC", 5: "ITU601", 6: "SMPTE170M", 7: "SMPTE240M", 9: "BT2020"}
_BT709, _RESERVED = 1, 3  # AVCOL_PRI/TRC/SPC_*; 0 is reserved for primaries and transfer


def _av_error_types():
    import av
    return (av.error.FFmpegError, ValueError, OSError)


class PyAVReader:
    """Decodes the first video stream to RGB frames with their source timestamps; a bad packet is skipped
    (the previous frame then shows for longer, so timing holds) with a warning."""

    def __init__(self, path: Path, start: float = 0.0, duration: float | None = None):
        import av
        self.path, self.start, self.duration = path, start, duration
        try:
            self.container = av.open(str(path))
        except _av_error_types() as e:
            raise VideoError(f"{path}: not a video FFmpeg can read ({first_line(e)})") from None
        if self.container.format.name in ("image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe"):
            self.container.close()
            raise VideoError(f"{path}: is an image, not a video (use `recolor image`)")
        if not self.container.streams.video:
            self.container.close()
            raise VideoError(f"{path}: has no video stream")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"  # frame threads: decoding keeps up with the network
        self.skipped = 0
        self.info = self._probe()
        # --start counts from the stream's first timestamp, which need not be 0 (MPEG-TS, cut files)
        self.origin = self.stream.start_time or 0

    def _probe(self) -> VideoInfo:
        s = self.stream
        # FFmpeg's guess (codec frame rate, then timestamps) stays right where timestamps are broken: a raw
        # .h264 at 29.97 has an average rate of 25
        rate = Fraction(s.guessed_rate or s.average_rate or s.base_rate or 25)
        tb = s.time_base or Fraction(1, 90000)
        duration = float(s.duration * tb) if s.duration else (self.container.duration or 0) / 1e6
        mean_rate = s.average_rate or rate  # VFR: the frame count goes with the average
        frames = s.frames or int(round(duration * mean_rate))
        if self.start or self.duration:
            remaining = max(0.0, duration - self.start) if duration else (self.duration or 0.0)
            duration = min(remaining, self.duration or remaining)
            frames = int(round(duration * mean_rate))
        cc = s.codec_context
        return VideoInfo(cc.width, cc.height, rate, Fraction(tb), frames, duration, len(self.container.streams.audio),
                         s.sample_aspect_ratio or cc.sample_aspect_ratio or None,
                         (cc.colorspace, cc.color_primaries, cc.color_trc))

    def seconds(self, pts: int) -> float:
        """A frame's time on the source's timeline (what --start and --hints-at count in)."""
        return float((pts - self.origin) * self.info.time_base)

    def frames(self) -> Iterator[tuple[np.ndarray, int, int, int]]:
        """Yields (RGB uint8 (H, W, 3), pts, duration, rotation) in the source time base.

        A frame the decoder rejects is replaced by the previous picture at the lost frame's timestamp (with a
        warning), so the frame count and timing still match the source."""
        tb = self.info.time_base
        if self.start > 0:
            self.container.seek(self.origin + int(self.start / tb), stream=self.stream, backward=True)
        end = self.start + self.duration if self.duration else math.inf
        last_rgb, rotation = None, 0
        for frame, pts, duration in self._timed():
            t = float((pts - self.origin) * tb)
            if t < self.start - 1e-6:
                continue
            if t >= end - 1e-6:
                break
            rgb = last_rgb if frame is None else self._to_rgb(frame, t)
            if rgb is None:
                continue
            if frame is not None:
                rotation = frame.rotation
            last_rgb = rgb
            yield rgb, pts, duration, rotation

    def _timed(self):
        """(frame, pts, duration) in display order with the timestamps to write (see `_Retimer`); frames wait in
        a short lookahead so that broken timestamps are noticed before any frame around them is placed."""
        timer = _Retimer(self.info.rate, self.info.time_base, self.origin)
        held = collections.deque()
        for frame, pts, duration in self._decoded():
            if frame is not None and timer.see(pts):
                log.warning("%s: the timestamps are broken (missing, repeated or out of order), so frames are "
                            "timed evenly at %.3f fps instead", self.path, float(self.info.rate))
            held.append((frame, pts, duration))
            if len(held) > _LOOKAHEAD:
                yield from timer.place(*held.popleft())
        for item in held:
            yield from timer.place(*item)

    def _to_rgb(self, frame, t: float) -> np.ndarray | None:
        import av
        try:
            return frame.to_ndarray(format="rgb24")
        except (av.error.FFmpegError, ValueError) as e:
            self._skip(f"frame at {t:.3f} s cannot be converted ({first_line(e)})")
            return None

    def _decoded(self):
        """(frame, pts, duration) in decode order; (None, pts, duration) for a packet the decoder rejected."""
        import av
        packets = self.container.demux(self.stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.error.FFmpegError as e:  # a damaged container: keep what was read
                self._skip(f"stopped reading at a damaged part of the file ({first_line(e)})")
                return
            try:
                for frame in packet.decode():
                    yield frame, frame.pts, frame.duration
            except av.error.FFmpegError as e:
                when = f" at {float(packet.pts * packet.time_base):.3f} s" if packet.pts is not None else ""
                self._skip(f"a corrupt frame{when} was replaced by the previous one ({first_line(e)})")
                if packet.pts is not None:
                    yield None, packet.pts, packet.duration

    def _skip(self, message: str) -> None:
        self.skipped += 1
        log.warning("%s: %s", self.path, message)

    def close(self) -> None:
        self.container.close()


class _Retimer:
    """The timestamps to write: the source's while they are valid, so VFR stays VFR; evenly spaced at the
    source's rate from the first broken one on (a missing one, or one not after the newest so far: B-frames
    muxed with pts = dts, a raw .h264), continuing from the last frame placed. Patching each bad timestamp
    alone left gaps: a 29.97 fps camera clip came out at 28.66 fps."""

    def __init__(self, rate: Fraction, time_base: Fraction, origin: int):
        self.ticks = 1 / (rate * time_base)  # per frame, exact: no drift with a coarse (1 ms) time base
        self.step = max(1, round(self.ticks))
        self.origin, self.broken, self.newest, self.lowest, self.last = origin, False, None, None, None
        self.anchor, self.count = None, 0  # even timing: frame `count` after `anchor` is at anchor + count·ticks

    def see(self, pts: int | None) -> bool:
        """Checks a decoded frame's timestamp as it arrives; True when this one shows they are broken."""
        if pts is not None:
            self.lowest = pts if self.lowest is None else min(self.lowest, pts)
        if pts is not None and (self.newest is None or pts > self.newest):
            self.newest = pts
            return False
        was, self.broken = self.broken, True
        return not was

    def place(self, frame, pts: int | None, duration: int | None):
        """Yields (frame, pts, duration) to write, or nothing for a lost frame (None) with no place in time: in
        a reordered codec its packet's timestamp can be behind frames already placed."""
        if self.broken:
            if self.anchor is None:  # go on from the last frame placed, else start at the earliest time seen
                self.anchor, self.count = ((self.last, 1) if self.last is not None else
                                           (self.origin if self.lowest is None else self.lowest, 0))
            self.last = self.anchor + round(self.count * self.ticks)
            self.count += 1
            yield frame, self.last, self.step
        elif pts is not None and (self.last is None or pts > self.last):
            self.last = pts
            yield frame, pts, duration or self.step


class PyAVWriter:
    """H.264 video at the source's time base, plus the source's audio streams copied packet for packet."""

    def __init__(self, path: Path, source: Path, info: VideoInfo, config: VideoConfig, rotation: int,
                 pts_offset: int = 0, end_s: float | None = None):
        """pts_offset: source pts that becomes 0 (the first frame of a slice; 0 keeps the timeline)."""
        import av
        self.container = av.open(str(path), "w")
        try:
            self.stream = self._add_video(info, config, rotation)
            trimmed = pts_offset > 0 or end_s is not None
            self.audio = AudioCopy(source, self.container, float(pts_offset * info.time_base), end_s, trimmed)
        except BaseException:
            self.container.close()
            raise
        self.info, self.pts_offset = info, pts_offset

    def _add_video(self, info: VideoInfo, config: VideoConfig, rotation: int):
        s = self.container.add_stream("libx264", rate=info.rate)
        s.width, s.height, s.pix_fmt = _even(info.width), _even(info.height), "yuv420p"
        s.time_base = info.time_base
        s.codec_context.time_base = info.time_base  # frame pts pass through unchanged: exact timing
        s.options = {"crf": str(config.crf), "preset": config.preset}
        if rotation:
            s.set_display_rotation(rotation)
        if info.sar:
            s.codec_context.sample_aspect_ratio = info.sar  # anamorphic DVD/DV: keeps the picture's shape
        cc = s.codec_context
        cc.colorspace, cc.color_primaries, cc.color_trc = _output_colour(info)
        cc.color_range = 1  # limited (MPEG) range: what x264's yuv420p is and what players assume
        self.matrix = _MATRICES.get(cc.colorspace, "ITU601")  # untagged SD: BT.601, what players assume
        return s

    def write(self, rgb: np.ndarray, pts: int, duration: int) -> None:
        import av
        frame = av.VideoFrame.from_ndarray(_pad_even(rgb), format="rgb24")
        # to YUV with the matrix the tags name (the encoder's own conversion would always use BT.601)
        frame = frame.reformat(format="yuv420p", dst_colorspace=self.matrix, dst_color_range="MPEG")
        frame.pts, frame.duration, frame.time_base = pts - self.pts_offset, duration, self.info.time_base
        self.audio.pump(float(pts * self.info.time_base) + _AUDIO_LEAD_S)
        self.container.mux(self.stream.encode(frame))

    def finish(self) -> None:
        self.container.mux(self.stream.encode(None))
        self.audio.pump(math.inf)
        self.audio.close()
        self.container.close()

    def abort(self) -> None:
        for closable in (self.audio, self.container):
            try:
                closable.close()
            except Exception:  # already failing; the temp file is deleted next
                pass


def _output_colour(info: VideoInfo) -> tuple[int, int, int]:
    """(matrix, primaries, transfer) tags for the output: the source's where it has them, else BT.709 for HD, the
    standard players assume for untagged HD too; untagged SD stays untagged (players assume BT.601)."""
    default = _BT709 if info.width >= 1280 or info.height > 576 else UNSPECIFIED
    matrix, primaries, transfer = info.colour
    known = lambda tag: tag not in (0, UNSPECIFIED, _RESERVED)  # noqa: E731
    return (matrix if matrix in _MATRICES else default, primaries if known(primaries) else default,
            transfer if known(transfer) else default)


def _even(n: int) -> int:
    return n + (n % 2)


def _pad_even(rgb: np.ndarray) -> np.ndarray:
    """yuv420p needs even sides; repeat the last row/column rather than rescale (odd sizes are rare)."""
    h, w = rgb.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return rgb
    return np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
