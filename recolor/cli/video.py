"""`recolor video`: a film in, the same film in colour out (length, frame rate and sound kept)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..defaults import BATCH_SIZE, FILM_RENDER_FACTOR, OUTPUT_SUFFIX, X264_CRF, X264_PRESET
from .app import app, console, fail, load_colorizer
from .options import (DeviceOpt, ModelOpt, PrecisionOpt, RenderFactorOpt, RuntimeOpt, batch_size_option,
                      overwrite_option)


class PairOptions(typer.core.TyperCommand):
    """Typer has no repeatable two-value option, Click has (nargs=2, multiple=True): `--hints-at TIME FILE`."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        import click
        for param in self.params:
            if param.name == "hints_at":
                param.nargs, param.type = 2, click.Tuple([str, str])


@app.command("video", cls=PairOptions)
def video_command(
    source: Annotated[Path, typer.Argument(
        help="A video file (mp4, mov, mkv, avi, webm, ... anything FFmpeg reads).")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help=(
        f"Output file (.mp4/.mov/.mkv); default <stem>{OUTPUT_SUFFIX}.mp4 beside the input."))] = None,
    render_factor: RenderFactorOpt = FILM_RENDER_FACTOR,
    smooth: Annotated[Optional[float], typer.Option("--smooth", min=0.0, max=1.0, help=(
        "Temporal smoothing strength (0 = frame by frame). [default: measured, see README]"))] = None,
    no_smooth: Annotated[bool, typer.Option(
        "--no-smooth", help="Colour each frame alone (same as --smooth 0).")] = False,
    crf: Annotated[int, typer.Option(
        "--crf", min=0, max=51, help="H.264 quality: lower is better and bigger.")] = X264_CRF,
    preset: Annotated[str, typer.Option("--preset", help=(
        "x264 speed/size: ultrafast, superfast, veryfast, faster, fast, medium, slow, slower, veryslow, "
        "placebo."))] = X264_PRESET,
    start: Annotated[Optional[str], typer.Option(
        "--start", help="Start at this time: seconds or [HH:]MM:SS.")] = None,
    duration: Annotated[Optional[str], typer.Option(
        "--duration", help="Colorize only this long: seconds or [HH:]MM:SS.")] = None,
    backend: Annotated[str, typer.Option(
        "--backend", help="pyav (H.264 + audio) or opencv (mp4v, no audio).")] = "pyav",
    model: ModelOpt = "default",
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    runtime: RuntimeOpt = "auto",
    batch_size: Annotated[int, batch_size_option("Frames per network call.")] = BATCH_SIZE,
    overwrite: Annotated[bool, overwrite_option("Replace an existing output (never the input).")] = False,
    hints_at: Annotated[Optional[list[tuple]], typer.Option("--hints-at", metavar="TIME FILE", help=(
        "TIME FILE: the hints in FILE (JSON as for recolor image --hints; x, y in the frame's pixels) hold from "
        "the frame at TIME to the end of its shot, following the picture (repeatable)."))] = None,
) -> None:
    """Colorize a film: same length, frame rate and sound, with flicker smoothed out."""
    from ..hints import read_hints_file
    from ..video import DEFAULT_SMOOTH, VideoConfig, VideoError, check_input, colorize_video, parse_time
    from .report import film_progress, print_film_result
    try:
        hints = tuple((parse_time(at), tuple(read_hints_file(path)[0])) for at, path in hints_at or ())
        config = VideoConfig(render_factor, 0.0 if no_smooth else (DEFAULT_SMOOTH if smooth is None else smooth),
                             crf, preset, parse_time(start) or 0.0, parse_time(duration), backend, batch_size,
                             overwrite, hints)
        out = check_input(source, out, config)  # before the model loads: a bad path fails in a blink
    except (ValueError, VideoError) as e:
        fail(str(e), 1 if isinstance(e, VideoError) else 2)
    colorizer = load_colorizer(model, device, precision, runtime)
    with film_progress(console) as report:
        try:
            result = colorize_video(colorizer, source, out, config, report)
        except VideoError as e:
            fail(str(e), 1)
    print_film_result(console, result)
