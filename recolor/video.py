"""Colorizing video files: stream frames through the engine and the temporal smoother, keep sound and timing.

    decode thread:  demux -> decode -> RGB -> L (full res)           ┐ bounded queues, so memory does not
    main thread:    batch of L -> Colorizer.chroma -> a/b            │ grow with the video's length and no
    encode thread:  smooth a/b -> merge with the source L -> encode  ┘ frame ever touches the disk

I/O is FFmpeg through PyAV: any container FFmpeg reads in, H.264 (libx264, yuv420p) out, with the source's
exact time base and per-frame timestamps (29.97 stays 30000/1001, the frame count and duration stay the same;
broken source timestamps become even ones at the source's rate), audio packets copied as they are (re-encoded
to AAC only where the output container cannot hold the codec), and the rotation (display matrix), sample aspect
ratio and colour tags kept (BT.709 for untagged HD). Without PyAV, OpenCV's VideoCapture/VideoWriter do it
(mp4v, no audio, a float frame rate), with a warning.

The output is written to a hidden temp file beside the target and renamed into place only when complete, so
Ctrl-C or a crash never leaves a half-written video under the output name. DeOldify's video path wrote every
frame as a JPEG to disk, dropped the sound and broke on fractional frame rates; none of that happens here.
"""
from __future__ import annotations

import collections
import contextlib
import logging
import math
import os
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from . import color
from .atomic import OutputExists, publish
from .temporal import DEFAULT_SMOOTH, TemporalSmoother

log = logging.getLogger("recolor")

DEFAULT_VIDEO_RENDER_FACTOR = 21  # DeOldify's video default: lower than photos, fast and steadier
OUTPUT_SUFFIX = "_color"
OUTPUT_EXTENSIONS = (".mp4", ".mov", ".m4v", ".mkv")  # containers that hold H.264
BACKENDS = ("pyav", "opencv")
_AUDIO_LEAD_S = 1.0  # mux audio up to this far ahead of the video, so the muxer can interleave
_DONE = object()  # end-of-stream marker in the queues
_STANDARD_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")
# Decoded frames held back before their timestamps are fixed, so broken timestamps are noticed before any frame
# of the run is written: B-frames muxed with pts = dts come out of order within x264's longest B-frame run (16).
_LOOKAHEAD = 16
# FFmpeg's AVColorSpace values of the YUV matrices swscale converts to, and swscale's names for them.
_MATRICES = {1: "ITU709", 4: "FCC", 5: "ITU601", 6: "SMPTE170M", 7: "SMPTE240M", 9: "BT2020"}
_BT709, _UNSPECIFIED, _RESERVED = 1, 2, 3  # AVCOL_PRI/TRC/SPC_*; 0 is reserved for primaries and transfer


class VideoError(Exception):
    """A video that cannot be read or written; the message names the file."""


@dataclass(frozen=True)
class VideoConfig:
    render_factor: int = DEFAULT_VIDEO_RENDER_FACTOR
    smooth: float = DEFAULT_SMOOTH  # 0 = frame by frame
    crf: int = 18  # x264 quality: 18 is visually lossless, 23 is FFmpeg's default
    preset: str = "medium"  # x264 speed/size trade-off: ultrafast … veryslow
    start: float = 0.0  # seconds into the source
    duration: float | None = None  # seconds to colorize from start; None = to the end
    backend: str = "pyav"  # pyav | opencv
    batch_size: int = 4  # frames per network call
    overwrite: bool = False

    def __post_init__(self) -> None:
        color.check_render_factor(self.render_factor)
        if not 0.0 <= self.smooth <= 1.0:
            raise ValueError(f"--smooth {self.smooth} is out of range: use 0–1")
        if not 0 <= self.crf <= 51:
            raise ValueError(f"--crf {self.crf} is out of range: use 0–51")
        if self.start < 0 or (self.duration is not None and self.duration <= 0):
            raise ValueError("--start must be ≥ 0 and --duration > 0")
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}: use one of {', '.join(BACKENDS)}")
        if self.batch_size < 1:
            raise ValueError("--batch-size must be ≥ 1")
        if self.preset not in X264_PRESETS:
            raise ValueError(f"unknown --preset {self.preset!r}: use one of {', '.join(X264_PRESETS)}")


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    rate: Fraction  # frames per second, exact (nominal for VFR: what broken timestamps are replaced with)
    time_base: Fraction  # seconds per pts tick
    frames: int  # best estimate; 0 when unknown
    duration: float  # seconds; 0 when unknown
    audio_streams: int = 0
    sar: Fraction | None = None  # sample (pixel) aspect ratio; None = square
    colour: tuple[int, int, int] = (_UNSPECIFIED,) * 3  # the source's (matrix, primaries, transfer) tags


@dataclass(frozen=True)
class VideoResult:
    output: Path
    frames: int
    seconds: float
    scene_cuts: int
    skipped: int  # frames or packets that could not be decoded
    audio: str  # what happened to the sound, for the report
    backend: str

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Frame:
    l_full: np.ndarray  # (H, W) float32 in [0, 100]
    pts: int  # in the source time base (OpenCV: the frame index)
    duration: int
    ab: np.ndarray | None = None  # (h, w, 2) at render size, once predicted


# ----------------------------------------------------------------------------------------------- paths
def default_output(source: Path) -> Path:
    return source.with_name(source.stem + OUTPUT_SUFFIX + ".mp4")


def parse_time(text: str | float | None) -> float | None:
    """'90', '90.5', '1:30', '00:01:30.5' -> seconds."""
    if text is None or isinstance(text, (int, float)):
        return text
    try:
        parts = [float(p) for p in str(text).strip().split(":")]
    except ValueError:
        raise ValueError(f"cannot read time {text!r}: use seconds (90) or [HH:]MM:SS") from None
    if not 1 <= len(parts) <= 3 or any(p < 0 for p in parts):
        raise ValueError(f"cannot read time {text!r}: use seconds (90) or [HH:]MM:SS")
    return sum(p * 60 ** i for i, p in enumerate(reversed(parts)))


def check_input(source: str | Path, output: str | Path | None, config: VideoConfig) -> Path:
    """Everything that can be refused before a model loads: paths, and whether the source is a video at all.
    Returns the output path (the default one if output is None)."""
    source = Path(source)
    output = Path(output) if output is not None else default_output(source)
    _check_paths(source, output, config.overwrite)
    open_reader(source, pick_backend(config.backend, quiet=True), config.start, config.duration).close()
    return output


def _check_paths(source: Path, output: Path, overwrite: bool) -> None:
    if not source.exists():
        raise VideoError(f"{source}: no such file")
    if source.is_dir():
        raise VideoError(f"{source}: is a folder, not a video")
    if source.stat().st_size == 0:
        raise VideoError(f"{source}: empty file (0 bytes)")
    if output.exists() and output.resolve() == source.resolve():
        raise VideoError(f"{output}: is the input; choose another -o")
    if output.suffix.lower() not in OUTPUT_EXTENSIONS:
        raise VideoError(f"{output}: cannot write H.264 to '{output.suffix}'; use one of {', '.join(OUTPUT_EXTENSIONS)}")
    if output.exists() and not overwrite:
        raise VideoError(f"{output}: exists (use --overwrite to replace it)")


def _publish(tmp: Path, output: Path, overwrite: bool) -> None:
    try:
        publish(tmp, output, overwrite)
    except OutputExists as e:
        raise VideoError(str(e)) from None
    except OSError as e:
        raise VideoError(f"{output}: cannot write the video ({_first_line(e)})") from None


# ----------------------------------------------------------------------------------------------- PyAV
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
            raise VideoError(f"{path}: not a video FFmpeg can read ({_first_line(e)})") from None
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
            self._skip(f"frame at {t:.3f} s cannot be converted ({_first_line(e)})")
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
                self._skip(f"stopped reading at a damaged part of the file ({_first_line(e)})")
                return
            try:
                for frame in packet.decode():
                    yield frame, frame.pts, frame.duration
            except av.error.FFmpegError as e:
                when = f" at {float(packet.pts * packet.time_base):.3f} s" if packet.pts is not None else ""
                self._skip(f"a corrupt frame{when} was replaced by the previous one ({_first_line(e)})")
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
            self.audio = _AudioCopy(source, self.container, float(pts_offset * info.time_base), end_s, trimmed)
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


class _AudioCopy:
    """Reads the source's audio streams (a second demuxer on the same file, so the video path never waits on
    audio) and muxes them into the output: packets copied where the container can hold the codec, else
    decoded and re-encoded to AAC. Trimmed to [offset, end) and shifted so the output starts at offset."""

    def __init__(self, source: Path, out, offset_s: float, end_s: float | None, trimmed: bool):
        import av
        self.container = av.open(str(source))
        self.offset_s, self.end_s, self.trimmed = offset_s, end_s, trimmed
        self.routes = {}  # source stream -> (output stream, None to copy packets or a resampler to re-encode)
        for stream in self.container.streams.audio:
            try:
                self.routes[stream] = (out.add_stream_from_template(stream), None)
            except ValueError:  # a codec the container cannot hold, e.g. 8-bit PCM into mp4
                rate = stream.codec_context.sample_rate or 48000
                # the standard layout for the channel count: AAC refuses unordered ones ("1 channels")
                layout = _STANDARD_LAYOUTS.get(stream.codec_context.channels, "stereo")
                enc = out.add_stream("aac", rate=rate)
                enc.format, enc.layout = "fltp", layout
                self.routes[stream] = (enc, av.AudioResampler(format="fltp", layout=layout, rate=rate))
        self.summary = _audio_summary(self.routes)
        self.packets = self._packets() if self.routes else iter(())
        self._pending = None

    def _packets(self):
        import av
        if self.offset_s > 0:
            self.container.seek(int(self.offset_s * 1e6), backward=True)  # AV_TIME_BASE units
        try:
            for packet in self.container.demux(*self.routes):
                if packet.dts is not None or packet.pts is not None:
                    yield packet
        except av.error.FFmpegError as e:
            log.warning("audio: stopped at a damaged part of the file (%s)", _first_line(e))

    def pump(self, until_s: float) -> None:
        """Mux every audio packet that starts before until_s."""
        while True:
            packet = self._pending or next(self.packets, None)
            self._pending = None
            if packet is None:
                return
            tb = packet.time_base
            t = float((packet.pts if packet.pts is not None else packet.dts) * tb)
            if t >= until_s:
                self._pending = packet
                return
            self._mux(packet, t, tb)

    def _mux(self, packet, t: float, tb: Fraction) -> None:
        # Untrimmed, every packet goes, priming packets at negative pts included (the decoded samples then
        # match the source's exactly); a slice keeps packets that start inside it.
        if self.trimmed and (t < self.offset_s - 1e-6 or (self.end_s is not None and t >= self.end_s - 1e-6)):
            return
        out_stream, resampler = self.routes[packet.stream]
        shift = int(round(self.offset_s / tb))
        if resampler is None:
            packet.pts = None if packet.pts is None else packet.pts - shift
            packet.dts = None if packet.dts is None else packet.dts - shift
            packet.stream = out_stream
            out_stream.container.mux(packet)
            return
        for frame in packet.decode():
            frame.pts = None if frame.pts is None else frame.pts - shift
            for converted in resampler.resample(frame):
                out_stream.container.mux(out_stream.encode(converted))

    def close(self) -> None:
        if self.container is None:
            return
        for out_stream, resampler in self.routes.values():
            if resampler is not None:
                try:
                    for converted in resampler.resample(None):
                        out_stream.container.mux(out_stream.encode(converted))
                    out_stream.container.mux(out_stream.encode(None))
                except Exception as e:  # flushing an encoder that never started
                    log.debug("audio flush: %s", e)
        self.container.close()
        self.container = None


def _audio_summary(routes: dict) -> str:
    if not routes:
        return "no audio in the source"
    copied = sum(1 for _, resampler in routes.values() if resampler is None)
    parts = ([f"{copied} audio stream{'s' * (copied > 1)} copied"] if copied else []) + (
        [f"{len(routes) - copied} re-encoded to AAC"] if len(routes) > copied else [])
    return ", ".join(parts)


def _output_colour(info: VideoInfo) -> tuple[int, int, int]:
    """(matrix, primaries, transfer) tags for the output: the source's where it has them, else BT.709 for HD, the
    standard players assume for untagged HD too; untagged SD stays untagged (players assume BT.601)."""
    default = _BT709 if info.width >= 1280 or info.height > 576 else _UNSPECIFIED
    matrix, primaries, transfer = info.colour
    known = lambda tag: tag not in (0, _UNSPECIFIED, _RESERVED)  # noqa: E731
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


def _first_line(e: Exception) -> str:
    """FFmpeg's reason without the errno and file name PyAV wraps it in."""
    text = getattr(e, "strerror", None) or str(e)
    return text.splitlines()[0] if text else type(e).__name__


# ----------------------------------------------------------------------------------------------- OpenCV
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


def pick_backend(name: str, quiet: bool = False) -> str:
    """pyav unless asked otherwise; no PyAV -> opencv, with the warning a user needs to see."""
    chosen, why = name, "OpenCV backend: the output has no audio, mp4v video and a rounded frame rate."
    if name == "pyav":
        try:
            import av  # noqa: F401
            return "pyav"
        except ImportError:
            chosen, why = "opencv", ("PyAV is not installed, so OpenCV writes the video: mp4v instead of H.264, "
                                     "NO AUDIO, and a rounded frame rate. `pip install av` fixes all three.")
    if not quiet:
        log.warning(why)
    return chosen


def open_reader(path: Path, backend: str, start: float = 0.0, duration: float | None = None):
    return PyAVReader(path, start, duration) if backend == "pyav" else OpenCVReader(path, start, duration)


# ----------------------------------------------------------------------------------------------- pipeline
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


def colorize_video(colorizer, source: str | Path, output: str | Path | None = None,
                   config: VideoConfig = VideoConfig(),
                   progress: Callable[[int, int], None] | None = None) -> VideoResult:
    """Colorize a video file. progress(frames_done, frames_expected) is called from the calling thread.

    Raises VideoError (bad input, existing output), and re-raises whatever stops it (Ctrl-C included) after
    deleting the partial output."""
    source = Path(source)
    output = Path(output) if output is not None else default_output(source)
    _check_paths(source, output, config.overwrite)
    backend = pick_backend(config.backend)
    reader = open_reader(source, backend, config.start, config.duration)
    tmp = output.with_name(f".{output.stem}.{uuid.uuid4().hex[:8]}.part{output.suffix}")
    t0 = time.perf_counter()
    try:
        with _leave_a_core(colorizer):
            frames, smoother, audio = _run(colorizer, reader, source, tmp, output, config, backend, progress)
        if frames == 0:
            where = f" after --start {config.start:g} s" if config.start else ""
            raise VideoError(f"{source}: no video frames{where}")
        _publish(tmp, output, config.overwrite)
    finally:
        reader.close()
        tmp.unlink(missing_ok=True)
    return VideoResult(output, frames, time.perf_counter() - t0, smoother.scene_cuts, reader.skipped, audio,
                       backend)


@contextlib.contextmanager
def _leave_a_core(colorizer):
    """On CPU, run the network on all cores but one while the pipeline runs.

    OpenMP's spinning barriers collapse when another busy thread (decode/encode) takes one of their cores:
    measured on 2 cores, 2 torch threads beside the pipeline ran 2 fps, 1 thread 38 fps."""
    device = getattr(colorizer, "device", None)
    cores = os.cpu_count() or 1
    if getattr(device, "type", None) != "cpu" or cores < 2:
        yield
        return
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(min(before, cores - 1))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _run(colorizer, reader, source: Path, tmp: Path, output: Path, config: VideoConfig, backend: str, progress):
    """The three-stage pipeline; returns (frames written, the smoother, audio summary)."""
    stop = threading.Event()
    decoded: queue.Queue = queue.Queue(maxsize=2 * config.batch_size)  # bounded: memory stays flat
    colored: queue.Queue = queue.Queue(maxsize=2 * config.batch_size)
    smoother = TemporalSmoother(config.smooth)
    written, audio = [0], [""]
    frame_iter = reader.frames()
    first = next(frame_iter, None)  # read before the writer opens: rotation, and "no frames" without a file
    if first is None:
        return 0, smoother, ""

    def decode() -> None:
        for rgb, pts, dur, _ in _chain(first, frame_iter):
            if stop.is_set():
                return
            _put(decoded, _Frame(color.luminance(rgb), pts, dur), stop)
        _put(decoded, _DONE, stop)

    def encode() -> None:
        # This thread alone opens, writes and closes the output, so no other thread can close a container
        # while it is writing; stopped or failing, it aborts the file (colorize_video then deletes it).
        with _write_errors(output):
            writer = _open_writer(backend, tmp, source, reader, config, first[3], first[1])
            audio[0], finished = writer.audio.summary, False
            try:
                while not stop.is_set() and (item := _get(colored, stop, [])) is not _DONE:
                    l_small = color.resize_l(item.l_full, item.ab.shape[:2])
                    ab = smoother(l_small, item.ab)
                    writer.write(color.merge_l_ab(item.l_full, ab), item.pts, item.duration)
                    written[0] += 1
                if not stop.is_set():
                    writer.finish()
                    finished = True
            finally:
                if not finished:
                    writer.abort()

    stages = [_Stage(decode, "recolor-decode", stop), _Stage(encode, "recolor-encode", stop)]
    try:
        for stage in stages:
            stage.start()
        _infer(colorizer, config, decoded, colored, stop, stages, written, reader.info.frames, progress)
        _join(stages)
        _raise_stage_errors(stages)
    except BaseException:
        stop.set()  # every stage checks it at least once per frame
        _join(stages)  # no timeout: the temp file is deleted only once the encoder has closed it
        raise
    if progress is not None:
        progress(written[0], written[0])
    return written[0], smoother, audio[0]


def _join(stages: list[_Stage]) -> None:
    for stage in stages:
        if stage.is_alive():
            stage.join()


@contextlib.contextmanager
def _write_errors(output: Path):
    """An encoder or muxer failure (a full disk, an option FFmpeg refuses) -> one line that names the output."""
    try:
        import av
        errors = (av.error.FFmpegError, OSError)
    except ImportError:  # the OpenCV backend
        errors = (OSError,)
    try:
        yield
    except errors as e:
        raise VideoError(f"{output}: cannot write the video ({_first_line(e)})") from None


def _infer(colorizer, config: VideoConfig, decoded, colored, stop, stages, written, expected, progress) -> None:
    """Main thread: batches of L -> chroma at render size -> the encode queue, in order."""
    done = False
    while not done:
        batch = []
        while len(batch) < config.batch_size:
            item = _get(decoded, stop, stages)
            if item is _DONE:
                done = True
                break
            batch.append(item)
        if batch:
            for item, ab in zip(batch, colorizer.chroma([f.l_full for f in batch], config.render_factor,
                                                        config.batch_size)):
                item.ab = ab
                _put(colored, item, stop)
        _raise_stage_errors(stages)
        if progress is not None:
            progress(written[0], max(expected, written[0]))
    _put(colored, _DONE, stop)


def _open_writer(backend: str, tmp: Path, source: Path, reader, config: VideoConfig, rotation: int,
                 first_pts: int):
    info = reader.info
    if backend == "opencv":
        return OpenCVWriter(tmp, info)
    if info.width % 2 or info.height % 2:
        log.warning("%s: %d×%d has an odd side; H.264 (yuv420p) needs even sides, so the last row/column is "
                    "repeated", source, info.width, info.height)
    # a slice (--start or --duration) starts at 0 and its audio is cut to it; a whole video keeps its timeline
    pts_offset = first_pts if reader.start > 0 or reader.duration else 0
    end = float(first_pts * info.time_base) + reader.duration if reader.duration else None
    return PyAVWriter(tmp, source, info, config, rotation, pts_offset, end)


def _chain(first, rest):
    yield first
    yield from rest
