"""The two I/O backends behind one choice: PyAV (H.264, sound, exact timing) unless OpenCV is asked for.
Opening a reader is also how a source is checked before a model loads."""
from __future__ import annotations

import logging
from pathlib import Path

from ..hints import check_inside
from .config import VideoConfig, check_paths, default_output
from .opencv_io import OpenCVReader, OpenCVWriter
from .pyav_io import PyAVReader, PyAVWriter

log = logging.getLogger("recolor")


def pick_backend(name: str, quiet: bool = False) -> str:
    """The backend asked for; opencv comes with the warning a user needs to see."""
    if name == "opencv" and not quiet:
        log.warning("OpenCV backend: the output has no audio, mp4v video and a rounded frame rate.")
    return name


def open_reader(path: Path, backend: str, start: float = 0.0, duration: float | None = None):
    return PyAVReader(path, start, duration) if backend == "pyav" else OpenCVReader(path, start, duration)


def open_writer(backend: str, tmp: Path, reader, config: VideoConfig, rotation: int, first_pts: int):
    """The writer for reader's source, into tmp; rotation and first_pts come from the first decoded frame."""
    info = reader.info
    if backend == "opencv":
        return OpenCVWriter(tmp, info)
    if info.width % 2 or info.height % 2:
        log.warning("%s: %d×%d has an odd side; H.264 (yuv420p) needs even sides, so the last row/column is "
                    "repeated", reader.path, info.width, info.height)
    # a slice (--start or --duration) starts at 0 and its audio is cut to it; a whole video keeps its timeline
    pts_offset = first_pts if reader.start > 0 or reader.duration else 0
    end = float(first_pts * info.time_base) + reader.duration if reader.duration else None
    return PyAVWriter(tmp, reader.path, info, config, rotation, pts_offset, end)


def check_input(source: str | Path, output: str | Path | None, config: VideoConfig) -> Path:
    """Everything that can be refused before a model loads: paths, and whether the source is a video at all.
    Returns the output path (the default one if output is None)."""
    source = Path(source)
    output = Path(output) if output is not None else default_output(source)
    check_paths(source, output, config.overwrite)
    reader = open_reader(source, pick_backend(config.backend, quiet=True), config.start, config.duration)
    reader.close()
    for _, hints in config.hints:  # a point outside the frame: refused now, not minutes into the film
        check_inside(list(hints), reader.info.width, reader.info.height, "frame")
    return output
