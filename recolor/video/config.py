"""What a video run is asked and what it reports: the options (`VideoConfig`), what the reader found in the source
(`VideoInfo`), the result (`VideoResult`), and the output path: its default name, the checks made before anything
runs, and publishing the finished file (written to a hidden temp file, renamed into place only when complete)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from .. import color
from ..atomic import OutputExists, publish
from ..defaults import BATCH_SIZE, FILM_RENDER_FACTOR, OUTPUT_SUFFIX, X264_CRF, X264_PRESET
from .temporal import DEFAULT_SMOOTH

OUTPUT_EXTENSIONS = (".mp4", ".mov", ".m4v", ".mkv")  # containers that hold H.264
BACKENDS = ("pyav", "opencv")
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")
UNSPECIFIED = 2  # FFmpeg's AVCOL_PRI/TRC/SPC_UNSPECIFIED: a colour tag the source does not set


class VideoError(Exception):
    """A video that cannot be read or written; the message names the file."""


@dataclass(frozen=True)
class VideoConfig:
    render_factor: int = FILM_RENDER_FACTOR
    smooth: float = DEFAULT_SMOOTH  # 0 = frame by frame
    crf: int = X264_CRF
    preset: str = X264_PRESET  # x264 speed/size trade-off: ultrafast … veryslow
    start: float = 0.0  # seconds into the source
    duration: float | None = None  # seconds to colorize from start; None = to the end
    backend: str = "pyav"  # pyav | opencv
    batch_size: int = BATCH_SIZE  # frames per network call
    overwrite: bool = False
    hints: tuple = ()  # ((seconds, (hints.Hint, ...)), ...): colour hints from that frame to its shot's end

    def __post_init__(self) -> None:
        color.check_render_factor(self.render_factor)
        if not 0.0 <= self.smooth <= 1.0:
            raise ValueError(f"--smooth {self.smooth} is out of range: use 0–1")
        if not 0 <= self.crf <= 51:
            raise ValueError(f"--crf {self.crf} is out of range: use 0–51")
        if not (0 <= self.start < math.inf) or (self.duration is not None and not 0 < self.duration < math.inf):
            raise ValueError("--start must be ≥ 0 and --duration > 0, both finite")  # nan fails both too
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
    colour: tuple[int, int, int] = (UNSPECIFIED,) * 3  # the source's (matrix, primaries, transfer) tags


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
    seconds = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    if not 1 <= len(parts) <= 3 or any(p < 0 for p in parts) or not math.isfinite(seconds):  # inf, nan, 1e400
        raise ValueError(f"cannot read time {text!r}: use seconds (90) or [HH:]MM:SS")
    return seconds


def check_paths(source: Path, output: Path, overwrite: bool) -> None:
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


def publish_video(tmp: Path, output: Path, overwrite: bool) -> None:
    try:
        publish(tmp, output, overwrite)
    except OutputExists as e:
        raise VideoError(str(e)) from None
    except OSError as e:
        raise VideoError(f"{output}: cannot write the video ({first_line(e)})") from None


def first_line(e: Exception) -> str:
    """FFmpeg's reason without the errno and file name PyAV wraps it in."""
    text = getattr(e, "strerror", None) or str(e)
    return text.splitlines()[0] if text else type(e).__name__
