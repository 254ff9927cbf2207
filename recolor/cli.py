"""The `recolor` command line: a thin layer over the Python API.

Each command parses options, builds a config, calls the library and reports with Rich. Heavy modules
(torch, cv2) are imported inside the commands, so `recolor --help` stays instant.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from . import __version__

# rich_markup_mode=None: help texts are plain text, so `recolor[onnx]` or `owner/repo[@rev]` print as written
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None, help="Bring black-and-white photos and film back to colour.")
console = Console(stderr=True)


class UsageError(Exception):
    """Reported as one line with exit code 2."""


def _version(value: bool) -> None:
    if value:
        print(f"recolor {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                               help="Show the version and exit.")] = False) -> None:
    from rich.logging import RichHandler
    logging.basicConfig(level=logging.WARNING, format="%(message)s", handlers=[RichHandler(console=console,
                        show_time=False, show_path=False)])
    # OpenMP threads that spin while they wait collapse when anything else is busy on their cores: on 2 shared
    # cores, 2 torch threads ran 4-8x slower than 1 (benchmarks/README.md). Set here, for the tool's own
    # process only (a library must not change its caller's), before torch loads; a user's own setting wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))  # all cores, not the physical ones torch guesses


def fail(message: str, code: int = 2) -> None:
    """One line whatever the terminal width (never wrapped, so it greps), then exit with `code`."""
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def load_colorizer(model: str, device: str, precision: str, runtime: str = "auto"):
    from .engine import Colorizer
    from .weights import WeightsError
    try:
        return Colorizer.from_pretrained(model, device, precision, runtime)
    except (WeightsError, ValueError, RuntimeError) as e:
        fail(str(e).splitlines()[0])


ModelOpt = Annotated[str, typer.Option("--model", "-m", help="default, a .safetensors file, or owner/repo[@rev] on the Hub.")]
DeviceOpt = Annotated[str, typer.Option("--device", "-d", help="auto (cuda > mps > cpu), cpu, cuda, cuda:N, mps.")]
PrecisionOpt = Annotated[str, typer.Option("--precision", help="auto, fp32, fp16 or bf16 (autocast).")]
RuntimeOpt = Annotated[str, typer.Option("--runtime", help="auto (ONNX Runtime on the CPU, no torch start-up; torch on GPUs), onnx or torch.")]


@app.command("image")
def image_command(
    inputs: Annotated[list[Path], typer.Argument(help="Image files and/or folders (searched recursively).")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output folder (mirrors inputs), or a file for one input.")] = None,
    render_factor: Annotated[int, typer.Option("--render-factor", "-r", min=7, max=64, help="Render size = factor × 16 px.")] = 35,
    model: ModelOpt = "default",
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    runtime: RuntimeOpt = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Images per network call.")] = 4,
    compare: Annotated[bool, typer.Option("--compare", help="Also write <name>_compare<ext>: a before|after sheet.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs (inputs are never replaced).")] = False,
    max_pixels: Annotated[int, typer.Option("--max-pixels", min=1, help="Refuse images larger than this many pixels.")] = 100_000_000,
    skip_existing: Annotated[bool, typer.Option("--skip-existing", help="Leave inputs whose outputs exist (resumes an interrupted run).")] = False,
    failures_to: Annotated[Optional[Path], typer.Option("--failures", help="Also write every failed input and its problem here (tab-separated).")] = None,
    hint: Annotated[Optional[list[str]], typer.Option("--hint", help="X,Y=COLOUR: this pixel of the photo (from the top-left) was this colour (CSS name or hex, e.g. 120,340=#a03020 or 400,80=navy; repeatable; one input photo).")] = None,
    hints_file: Annotated[Optional[Path], typer.Option("--hints", help='JSON of hints: {"points": [{"x": 120, "y": 340, "color": "#a03020"}], "reference": "optional.jpg"}.')] = None,
    reference: Annotated[Optional[Path], typer.Option("--reference", help="A colour photo whose palette the result should follow.")] = None,
) -> None:
    """Colorize photos: writes <name>_color<ext> beside each input, or under --out. Under torchrun, each
    process takes its own share of the photos (see recolor/shards.py)."""
    from .files import collisions, plan_jobs, skip_done
    from .report import Tally, print_summary, run_with_progress
    from .shards import Shard
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
        if guide.hints and not colorizer.takes_hints:
            fail(f"--model {model} takes no colour hints (it was trained without them); the default model does")
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


def read_guide(hint: list[str] | None, hints_file: Path | None, reference: Path | None, plan, max_pixels: int):
    """--hint/--hints/--reference -> a hints.Guide, checked against the one photo hints are for."""
    from .hints import HintError, check_inside, load_guide
    from .images import ImageError, probe
    try:
        guide = load_guide(hint, hints_file, reference, max_pixels)
        if guide.hints:
            if len(plan.jobs) != 1 or plan.errors:
                fail("--hint/--hints place points on one photo: give exactly one input photo "
                     "(--reference alone works for many)")
            width, height, orientation = probe(plan.jobs[0].source)
            check_inside(list(guide.hints), *((height, width) if orientation >= 5 else (width, height)))
    except (HintError, ImageError) as e:
        fail(str(e))
    return guide


def write_failures(path: Path, failures: list[tuple[str, str]]) -> None:
    from .images import write_atomic
    lines = "".join(f"{source}\t{message.removeprefix(source + ': ')}\n" for source, message in failures)
    try:
        write_atomic(path, lines.encode(), overwrite=True)
    except OSError as e:
        fail(f"--failures {path}: cannot write ({e.strerror or e})", 1)


app.command("colorize", help="Alias of `recolor image`.")(image_command)


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
    source: Annotated[Path, typer.Argument(help="A video file (mp4, mov, mkv, avi, webm, ... anything FFmpeg reads).")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output file (.mp4/.mov/.mkv); default <stem>_color.mp4 beside the input.")] = None,
    render_factor: Annotated[int, typer.Option("--render-factor", "-r", min=7, max=64, help="Render size = factor × 16 px.")] = 21,
    smooth: Annotated[Optional[float], typer.Option("--smooth", min=0.0, max=1.0, help="Temporal smoothing strength (0 = frame by frame). [default: measured, see README]")] = None,
    no_smooth: Annotated[bool, typer.Option("--no-smooth", help="Colour each frame alone (same as --smooth 0).")] = False,
    crf: Annotated[int, typer.Option("--crf", min=0, max=51, help="H.264 quality: lower is better and bigger.")] = 18,
    preset: Annotated[str, typer.Option("--preset", help="x264 speed/size: ultrafast, superfast, veryfast, faster, fast, medium, slow, slower, veryslow, placebo.")] = "medium",
    start: Annotated[Optional[str], typer.Option("--start", help="Start at this time: seconds or [HH:]MM:SS.")] = None,
    duration: Annotated[Optional[str], typer.Option("--duration", help="Colorize only this long: seconds or [HH:]MM:SS.")] = None,
    backend: Annotated[str, typer.Option("--backend", help="pyav (H.264 + audio) or opencv (mp4v, no audio).")] = "pyav",
    model: ModelOpt = "default",
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    runtime: RuntimeOpt = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Frames per network call.")] = 4,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output (never the input).")] = False,
    hints_at: Annotated[Optional[list[tuple]], typer.Option("--hints-at", metavar="TIME FILE", help="TIME FILE: the hints in FILE (JSON as for recolor image --hints; x, y in the frame's pixels) hold from the frame at TIME to the end of its shot, following the picture (repeatable).")] = None,
) -> None:
    """Colorize a film: same length, frame rate and sound, with flicker smoothed out."""
    import time
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from .video import DEFAULT_SMOOTH, VideoConfig, VideoError, check_input, colorize_video, parse_time
    from .hints import read_hints_file
    try:
        hints = tuple((parse_time(at), tuple(read_hints_file(path)[0])) for at, path in hints_at or ())
        config = VideoConfig(render_factor, 0.0 if no_smooth else (DEFAULT_SMOOTH if smooth is None else smooth),
                             crf, preset, parse_time(start) or 0.0, parse_time(duration), backend, batch_size, overwrite,
                             hints)
        out = check_input(source, out, config)  # before the model loads: a bad path fails in a blink
    except (ValueError, VideoError) as e:
        fail(str(e), 1 if isinstance(e, VideoError) else 2)
    colorizer = load_colorizer(model, device, precision, runtime)
    if hints and not colorizer.takes_hints:
        fail(f"--model {model} takes no colour hints (it was trained without them); the default model does")
    columns = (TextColumn("[bold]colorizing"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[fps]:.1f} fps"),
               TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task, t0 = bar.add_task("", total=None, fps=0.0), time.perf_counter()
        report = lambda done, total: bar.update(task, completed=done, total=total or None,
                                                fps=done / max(1e-9, time.perf_counter() - t0))
        try:
            result = colorize_video(colorizer, source, out, config, report)
        except VideoError as e:
            fail(str(e), 1)
    console.print(f"[green]✓[/] {escape(str(result.output))}: {result.frames} frames at {result.fps:.1f} fps, "
                  f"{result.audio}, {result.scene_cuts} scene cuts" + (f", [yellow]{result.skipped} damaged frames skipped[/]"
                                                        if result.skipped else ""), highlight=False)


@app.command("train")
def train_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder: checkpoints, logs, samples, model.safetensors.")],
    data: Annotated[Optional[Path], typer.Option("--data", help="Folder of colour photos (recursive).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out exactly where it stopped, with its stored settings. Given with it, --lr, --pretrain-steps, --critic-steps, --gan-steps and --amp/--no-amp change the run (so do critic_lr, gan_lr and log/val/save_every in --config); any other setting that differs from the run's is refused.")] = False,
    stage: Annotated[Optional[str], typer.Option("--stage", help="pretrain, critic, gan or all.")] = None,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Architecture (recolor-small, ...) or a .safetensors to fine-tune.")] = None,
    val: Annotated[Optional[Path], typer.Option("--val", help="Validation photos (default: a fixed hold-out of --data).")] = None,
    pretrain_steps: Annotated[Optional[int], typer.Option("--pretrain-steps", min=0)] = None,
    critic_steps: Annotated[Optional[int], typer.Option("--critic-steps", min=0)] = None,
    gan_steps: Annotated[Optional[int], typer.Option("--gan-steps", min=0)] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", "-b", min=1, help="Per process.")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", min=0.0, help="Generator learning rate in pretraining.")] = None,
    zoom: Annotated[Optional[float], typer.Option("--zoom", min=1.0, help="Crops come from the photo scaled up to this many times the crop size.")] = None,
    colour_weight: Annotated[Optional[float], typer.Option("--colour-weight", min=0.0, help="Weight of the colourfulness-matching loss (0: off).")] = None,
    source_weight: Annotated[Optional[list[str]], typer.Option("--source-weight", help="SOURCE=W: draw photos named SOURCE_* W times as often (repeatable; others 1).")] = None,
    perceptual: Annotated[Optional[str], typer.Option("--perceptual", help="mobilenet_v2, vgg16_bn or none.")] = None,
    pretrained: Annotated[Optional[bool], typer.Option("--pretrained/--no-pretrained", help="ImageNet weights for encoder and perceptual net.")] = None,
    amp: Annotated[Optional[bool], typer.Option("--amp/--no-amp", help="bf16/fp16 autocast.")] = None,
    hints: Annotated[Optional[bool], typer.Option("--hints/--no-hints", help="Colour-hint inputs, trained with hints drawn from each photo's own colours (default: on; fine-tuning a model without them adds them).")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed")] = None,
    device: DeviceOpt = "auto",
    workers: Annotated[int, typer.Option("--workers", "-j", help="Data-loader processes (-1: half the cores).")] = -1,
    threads: Annotated[int, typer.Option("--threads", help="CPU threads (0: all cores).")] = 0,
    config: Annotated[Optional[Path], typer.Option("--config", help="Start from the settings in this JSON (e.g. a run's config.json).")] = None,
) -> None:
    """Train a colorizer on your photos (pretrain → critic → GAN); resumable, DDP under torchrun."""
    import os
    from .progress import RichReporter
    from .training import TrainConfig, TrainingError, read_config_file, train
    options = {"data": data and str(data), "stage": stage, "model": model, "val": val and str(val), "seed": seed,
               "pretrain_steps": pretrain_steps, "critic_steps": critic_steps, "gan_steps": gan_steps,
               "batch_size": batch_size, "lr": lr, "zoom": zoom, "colour_weight": colour_weight,
               "perceptual": perceptual, "pretrained": pretrained, "amp": amp, "hints": hints,
               "source_weights": source_weight and parse_weights(source_weight)}
    given = {k: v for k, v in options.items() if v is not None}
    try:
        base = read_config_file(config) if config else {}
    except TrainingError as e:
        fail(str(e))
    settings = {**base, **given, "out": str(out), "device": device, "workers": workers, "threads": threads}
    if not settings.get("data") and not resume:
        fail("--data is required (except with --resume)")
    try:  # on resume, what was given (options and --config) is what may change the run: see train.resume_config
        run = train(TrainConfig.from_dict({"data": "", **settings}), resume, RichReporter(console), {*base, *given})
    except (TrainingError, ValueError, OSError) as e:
        fail(str(e))
    if os.environ.get("RANK", "0") == "0":
        console.print(escape(f"done: {run / 'model.safetensors'} (latest), {run / 'best.safetensors'} (best on val)"),
                      soft_wrap=True)


def parse_weights(items: list[str]) -> dict[str, float]:
    """["utkface=0.5", ...] -> {"utkface": 0.5}; a malformed item is a one-line error (the values are
    checked with the other settings, in TrainConfig.check)."""
    weights = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = None
        if not name.strip() or weight is None:
            fail(f"--source-weight {item!r}: expected SOURCE=WEIGHT, e.g. utkface=0.5")
        weights[name.strip()] = weight
    return weights


@app.command("eval")
def eval_command(
    data: Annotated[Path, typer.Option("--data", help="Folder of colour photos to desaturate and colorize.")],
    model: ModelOpt = "default",
    render_factor: Annotated[int, typer.Option("--render-factor", "-r", min=7, max=64)] = 35,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write every number (per photo too) here.")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Only the first N photos.")] = None,
    device: DeviceOpt = "auto",
    hints: Annotated[Optional[list[int]], typer.Option("--hints", min=0, help="Also score with N hints simulated from each photo's true colours (repeatable: a curve).")] = None,
) -> None:
    """Score a model on colour photos: ΔE2000, PSNR, SSIM, colourfulness, against the a=b=0 baseline."""
    from rich.progress import Progress
    from .evaluate import EvalConfig, check_json_path, eval_paths, evaluate, tables, write_json
    from .weights import WeightsError
    cfg = EvalConfig(str(data), model, render_factor, limit, device, hints=tuple(sorted(set(hints or ()))))
    try:
        if json_out:
            check_json_path(json_out)
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("scoring", total=len(eval_paths(cfg)))
            result = evaluate(cfg, on_photo=lambda _: bar.advance(task))
    except (WeightsError, ValueError) as e:
        fail(str(e).splitlines()[0])
    if not result.rows:
        fail(f"no colour photos could be scored ({len(result.skipped)} skipped)", 1)
    for table in tables(result):
        Console().print(table)
    if result.skipped:
        console.print(escape(f"skipped {len(result.skipped)}: " + "; ".join(f"{Path(f).name} ({w})"
                                                                        for f, w in result.skipped[:5])), soft_wrap=True)
    if json_out:
        try:
            write_json(result, cfg, json_out)
        except ValueError as e:
            fail(str(e), 1)


@app.command("models")
def models_command() -> None:
    """The models recolor knows: embedded, cached from the Hub, and the architectures it can train."""
    from .report import print_models
    print_models(Console())


@app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option("--host", help="Address to listen on: 0.0.0.0 shares it on the network (with a token).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", help="Port (0: any free one).")] = 8000,
    model: Annotated[Optional[list[str]], typer.Option("--model", "-m", help="Model(s) the page offers, the first by default (repeatable): default, a .safetensors file, or owner/repo[@rev].")] = None,
    device: DeviceOpt = "auto",
    token: Annotated[Optional[str], typer.Option("--token", help="Required on every API call (the printed address carries it). Default: none on 127.0.0.1, a random one otherwise.")] = None,
    max_upload_mb: Annotated[float, typer.Option("--max-upload-mb", help="Largest photo upload (with its reference photo).")] = 50.0,
    max_film_mb: Annotated[float, typer.Option("--max-film-mb", help="Largest film upload.")] = 1000.0,
    max_pixels: Annotated[int, typer.Option("--max-pixels", min=1, help="Refuse photos larger than this many pixels.")] = 50_000_000,
) -> None:
    """A local web page for colorizing photos and films in a browser (and its HTTP API); prints its address."""
    from .serve import ServeConfig, ServeError, listen, run
    try:
        config = ServeConfig(host, port, token, max_upload_mb, max_film_mb, max_pixels)
        sock = listen(host, port)  # before the models load: a taken port fails in a blink
    except (ValueError, ServeError) as e:
        fail(str(e))
    colorizers = {name: load_colorizer(name, device, "auto") for name in dict.fromkeys(model or ["default"])}
    run(config, sock, colorizers)


if __name__ == "__main__":
    app()
