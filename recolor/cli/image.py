"""`recolor image` (and its alias `recolor colorize`): photos and folders of them; a batch goes on past bad files,
prints a summary and exits 1 if any failed."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from ..defaults import BATCH_SIZE, COMPARE_SUFFIX, MAX_PIXELS, PHOTO_RENDER_FACTOR
from .app import app, console, fail, load_colorizer
from .options import (DeviceOpt, ModelOpt, PrecisionOpt, RenderFactorOpt, RuntimeOpt, batch_size_option,
                      overwrite_option)


@app.command("image")
def image_command(
    inputs: Annotated[list[Path], typer.Argument(help="Image files and/or folders (searched recursively).")],
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", help="Output folder (mirrors inputs), or a file for one input.")] = None,
    render_factor: RenderFactorOpt = PHOTO_RENDER_FACTOR,
    model: ModelOpt = "default",
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    runtime: RuntimeOpt = "auto",
    batch_size: Annotated[int, batch_size_option("Images per network call.")] = BATCH_SIZE,
    compare: Annotated[bool, typer.Option(
        "--compare", help=f"Also write <name>{COMPARE_SUFFIX}<ext>: a before|after sheet.")] = False,
    overwrite: Annotated[bool, overwrite_option("Replace existing outputs (inputs are never replaced).")] = False,
    max_pixels: Annotated[int, typer.Option(
        "--max-pixels", min=1, help="Refuse images larger than this many pixels.")] = MAX_PIXELS,
    skip_existing: Annotated[bool, typer.Option(
        "--skip-existing", help="Leave inputs whose outputs exist (resumes an interrupted run).")] = False,
    failures_to: Annotated[Optional[Path], typer.Option(
        "--failures", help="Also write every failed input and its problem here (tab-separated).")] = None,
    hint: Annotated[Optional[list[str]], typer.Option("--hint", help=(
        "X,Y=COLOUR: this pixel of the photo (from the top-left) was this colour (CSS name or hex, e.g. "
        "120,340=#a03020 or 400,80=navy; repeatable; one input photo)."))] = None,
    hints_file: Annotated[Optional[Path], typer.Option("--hints", help=(
        'JSON of hints: {"points": [{"x": 120, "y": 340, "color": "#a03020"}], "reference": "optional.jpg"}.'))] = None,
    reference: Annotated[Optional[Path], typer.Option(
        "--reference", help="A colour photo whose palette the result should follow.")] = None,
) -> None:
    """Colorize photos: writes <name>_color<ext> beside each input, or under --out. Under torchrun, each
    process takes its own share of the photos (see recolor/shards.py)."""
    from ..files import collisions, plan_jobs, skip_done
    from ..shards import Shard
    from .report import Tally, print_summary, run_with_progress
    if skip_existing and overwrite:
        fail("--skip-existing and --overwrite contradict each other: choose one")
    shard = Shard.from_env()
    plan = plan_jobs(inputs, out, compare)
    if clashes := collisions(plan):
        target, first, second = clashes[0]
        fail(f"{first} and {second} would both write {target} ({len(clashes)} such clashes); "
             f"give them different -o folders or rename one")
    if not plan.jobs and plan.errors:
        fail("; ".join(f"{p}: {m}" if not m.startswith(str(p)) else m for p, m in plan.errors))
    guide = read_guide(hint, hints_file, reference, plan, max_pixels)
    plan.jobs = shard.take(plan.jobs)
    if not shard.main:
        plan.errors = []  # every process planned them: rank 0 reports them once
    tally = Tally(skipped=skip_done(plan) if skip_existing else 0)
    if plan.jobs or plan.errors:
        colorizer = load_colorizer(model, shard.device(device), precision, runtime)
        quiet = console if shard.main else Console(stderr=True, quiet=True)
        tally = tally + run_with_progress(quiet, colorizer, plan, render_factor, batch_size, overwrite, max_pixels,
                                          guide)
    tallies = shard.gather(tally)
    if shard.main:
        tally = sum(tallies[1:], tallies[0])
        print_summary(console, tally, render_factor)
        if tally.failures and failures_to:
            write_failures(failures_to, tally.failures)
    raise typer.Exit(1 if shard.main and tally.failures else 0)


app.command("colorize", help="Alias of `recolor image`.")(image_command)


def read_guide(hint: list[str] | None, hints_file: Path | None, reference: Path | None, plan, max_pixels: int):
    """--hint/--hints/--reference -> a hints.Guide, checked against the one photo hints are for."""
    from ..hints import HintError, check_inside, load_guide
    from ..images import ImageError, upright_size
    try:
        guide = load_guide(hint, hints_file, reference, max_pixels)
        if guide.hints:
            if len(plan.jobs) != 1 or plan.errors:
                fail("--hint/--hints place points on one photo: give exactly one input photo "
                     "(--reference alone works for many)")
            check_inside(list(guide.hints), *upright_size(plan.jobs[0].source))
    except (HintError, ImageError) as e:
        fail(str(e))
    return guide


def write_failures(path: Path, failures: list[tuple[str, str]]) -> None:
    from ..images import write_atomic
    lines = "".join(f"{source}\t{message.removeprefix(source + ': ')}\n" for source, message in failures)
    try:
        write_atomic(path, lines.encode(), overwrite=True)
    except OSError as e:
        fail(f"--failures {path}: cannot write ({e.strerror or e})", 1)
