"""Every piece of the CLI's Rich output: progress bars (photos, films, training, eval), summaries, the eval
tables and the model listing. The library reports through plain callbacks (`on_done`, `report`, `on_photo`,
training's `Reporter`); only this module draws them."""
from __future__ import annotations

import re
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

METRIC_NAMES = {"delta_e": "ΔE2000 ↓", "psnr": "PSNR dB ↑", "ssim": "SSIM ↑", "colourfulness": "colourfulness",
                "washed_out": "washed-out rate ↓"}


# ------------------------------------------------------------------------------------------- photos
@dataclass
class Tally:
    """What a batch did: summed over the processes of a sharded run before it is printed."""
    done: int = 0
    seconds: float = 0.0  # summed over the colorized images
    failures: list[tuple[str, str]] = field(default_factory=list)  # (input, problem)
    skipped: int = 0  # outputs that existed (--skip-existing)

    def __add__(self, other: "Tally") -> "Tally":
        return Tally(self.done + other.done, self.seconds + other.seconds, self.failures + other.failures,
                     self.skipped + other.skipped)


def run_with_progress(console: Console, colorizer, plan, render_factor: int, batch_size: int, overwrite: bool,
                      max_pixels: int, guide=None) -> Tally:
    """Colorize every job with a progress bar (for more than one file) and a line per output written."""
    from ..files import colorize_files
    from ..hints import Guide
    jobs = plan.jobs
    with Progress(TextColumn("[bold]colorizing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  TextColumn("{task.description}"), console=console, transient=True,
                  disable=len(jobs) < 2) as progress:
        task = progress.add_task("", total=len(jobs))

        def done(outcome) -> None:
            progress.update(task, advance=1, description=escape(outcome.job.source.name))
            if outcome.error is None:
                progress.console.print(f"[green]✓[/] {escape(str(outcome.job.output))}", soft_wrap=True,
                                       highlight=False)

        outcomes = colorize_files(colorizer, jobs, render_factor, batch_size, overwrite, max_pixels, done,
                                  guide or Guide())
    good = [o for o in outcomes if o.error is None]
    return Tally(len(good), sum(o.seconds for o in good),
                 [(str(o.job.source), o.error) for o in outcomes if o.error] + [(str(p), m) for p, m in plan.errors])


def print_summary(console: Console, tally: Tally, render_factor: int) -> None:
    if tally.skipped:
        console.print(f"skipped {tally.skipped} inputs whose outputs exist", highlight=False)
    if tally.failures:
        print_failures(console, tally.failures, tally.done)
    elif tally.done > 1:
        console.print(f"[green]{tally.done} images colorized[/] ({tally.seconds / tally.done:.2f} s each, "
                      f"render factor {render_factor})")


def print_failures(console: Console, failures: list[tuple[str, str]], ok: int, shown: int = 20) -> None:
    """One unwrapped `input: problem` line per failure (greppable at any terminal width), the first `shown`
    of them, then a count per kind of problem, so ten thousand failures still read in a screenful."""
    console.print(f"[bold red]{len(failures)} failed[/], {ok} done", highlight=False)
    for path, message in failures[:shown]:
        console.print(escape(f"  {path}: {message.removeprefix(path + ': ')}"), soft_wrap=True, highlight=False)
    if len(failures) > shown:
        kinds = Counter(problem_kind(path, message) for path, message in failures)
        console.print(f"  ... and {len(failures) - shown} more; by problem:", highlight=False)
        for kind, count in kinds.most_common(10):
            console.print(escape(f"  {count:>8}  {kind}"), soft_wrap=True, highlight=False)


def problem_kind(path: str, message: str) -> str:
    """A failure message without its file names and numbers: 'cannot decode (truncated or corrupt)'."""
    text = re.sub(r"^[^:]*[/.][^:]*: ", "", message.removeprefix(path + ": "))  # an output's name, say
    return re.sub(r"\d+", "N", text)


# ------------------------------------------------------------------------------------------- films
@contextmanager
def film_progress(console: Console) -> Iterator[Callable[[int, int], None]]:
    """A transient bar while a film is colorized: frames done of the total (once known), frames per second and
    time left. Yields the `report(done, total)` callback that video.colorize_video takes."""
    columns = (TextColumn("[bold]colorizing"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[fps]:.1f} fps"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task, t0 = bar.add_task("", total=None, fps=0.0), time.perf_counter()

        def report(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total or None, fps=done / max(1e-9, time.perf_counter() - t0))

        yield report


def print_film_result(console: Console, result) -> None:
    """The line a finished film leaves: where it went, its frames and frame rate, sound, scene cuts."""
    skipped = f", [yellow]{result.skipped} damaged frames skipped[/]" if result.skipped else ""
    console.print(f"[green]✓[/] {escape(str(result.output))}: {result.frames} frames at {result.fps:.1f} fps, "
                  f"{result.audio}, {result.scene_cuts} scene cuts" + skipped, highlight=False)


# ------------------------------------------------------------------------------------------- training
class RichReporter:
    """Training progress (a `recolor.training.Reporter`): stage, step/total, losses, images/s and ETA as a Rich
    progress bar."""

    def __init__(self, console=None):
        self.progress = Progress(TextColumn("[bold]{task.description:<8}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[text]}"), TextColumn("ETA"), TimeRemainingColumn(),
                                 console=console, transient=False)
        self.progress.start()
        self.task = None

    def stage(self, name: str, total: int, start: int) -> None:
        self.task = self.progress.add_task(name, total=total, completed=start, text="")

    def update(self, step: int, text: str) -> None:
        self.progress.update(self.task, completed=step, text=text)

    def info(self, text: str) -> None:
        self.progress.console.print(text, highlight=False)

    def close(self) -> None:
        self.progress.stop()


# ------------------------------------------------------------------------------------------- eval
@contextmanager
def eval_progress(console: Console, total: int) -> Iterator[Callable[[object], None]]:
    """A transient "scoring" bar over `total` photos; yields the `on_photo(path)` callback evaluate() takes."""
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("scoring", total=total)
        yield lambda _path: bar.advance(task)


def eval_tables(result) -> tuple[Table, ...]:
    """An evaluate.EvalResult as Rich tables: the overall comparison, ΔE / colourfulness per source, and with
    simulated hints the ΔE/PSNR curve against the number of hints."""
    s = result.summary()
    main = Table(title=f"{s['count']} photos")
    for col in ("metric", "model", "a=b=0 baseline", "ground truth"):
        main.add_column(col, justify="left" if col == "metric" else "right")
    for key, label in METRIC_NAMES.items():
        truth = f"{s['truth']['colourfulness']:.1f}" if key == "colourfulness" else ""
        main.add_row(label, f"{s['model'][key]:.3f}", f"{s['baseline'][key]:.3f}", truth)
    per = Table(title="per source (file-name prefix)")
    for col in ("source", "photos", "ΔE model", "ΔE baseline", "colourfulness model", "ground truth", "washed out"):
        per.add_column(col, justify="left" if col == "source" else "right")
    for source, t in result.per_source().items():
        per.add_row(source, str(t["count"]), f"{t['model']['delta_e']:.2f}", f"{t['baseline']['delta_e']:.2f}",
                    f"{t['model']['colourfulness']:.1f}", f"{t['truth']['colourfulness']:.1f}",
                    f"{100 * t['model']['washed_out']:.0f}%")
    if not any(k.startswith("hints") for k in s):
        return main, per
    curve = Table(title="with simulated hints (Zhang et al. 2017)")
    for col in ("hints", "ΔE2000 ↓", "PSNR dB ↑"):
        curve.add_column(col, justify="right")
    counts = sorted(int(k.removeprefix("hints")) for k in s if k.startswith("hints"))
    curve.add_row("0", f"{s['model']['delta_e']:.3f}", f"{s['model']['psnr']:.2f}")
    for n in counts:
        curve.add_row(str(n), f"{s[f'hints{n}']['delta_e']:.3f}", f"{s[f'hints{n}']['psnr']:.2f}")
    return main, per, curve


# ------------------------------------------------------------------------------------------- models
def print_models(console: Console) -> None:
    from ..weights import DEFAULT_MODEL, describe, embedded_models, hub_cached_models
    try:
        from ..model import MODELS  # the architectures to train: the model code needs torch
    except ImportError:
        MODELS = {}
    table = Table(title="Models")
    for col in ("name", "kind", "encoder", "size", "notes"):
        table.add_column(col)
    embedded = embedded_models()
    for name, path in embedded.items():  # a registered name is one model: its weights, and how to train it again
        d = describe(path)
        notes = ["the default"] * (name == DEFAULT_MODEL) + [f"train with: recolor train --model {name}"] * (
            name in MODELS)
        table.add_row(name, "embedded", d["config"].get("encoder", "?"), f"{d['size_mb']:.1f} MB", "; ".join(notes))
    for repo, revisions in hub_cached_models().items():
        table.add_row(repo, "Hub (cached)", "", "", "revisions: " + ", ".join(revisions))
    for name, cfg in MODELS.items():
        if name not in embedded:
            table.add_row(name, "architecture", cfg.encoder, "", f"train with: recolor train --model {name}")
    console.print(table)
    console.print("Any .safetensors file made by `recolor train` works too: --model path/to/model.safetensors; "
                  "Hub models: --model owner/repo[@revision].", markup=False)
    if not MODELS:
        console.print("Architectures to train your own: pip install 'recolor[train]'.", markup=False)
