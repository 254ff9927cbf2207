"""Rich output for the CLI: progress bars, summary tables, model listings."""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table


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
    from .files import colorize_files
    from .hints import Guide
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


def print_models(console: Console) -> None:
    from .model import MODELS
    from .weights import DEFAULT_MODEL, describe, embedded_models, hub_cached_models
    table = Table(title="Models")
    for col in ("name", "kind", "encoder", "size", "notes"):
        table.add_column(col)
    for name, path in embedded_models().items():
        d = describe(path)
        note = "the default" if name == DEFAULT_MODEL else ""
        table.add_row(name, "embedded", d["config"].get("encoder", "?"), f"{d['size_mb']:.1f} MB", note)
    for repo, revisions in hub_cached_models().items():
        table.add_row(repo, "Hub (cached)", "", "", "revisions: " + ", ".join(revisions))
    for name, cfg in MODELS.items():
        table.add_row(name, "architecture", cfg.encoder, "", "train with: recolor train --model " + name)
    console.print(table)
    console.print("Any .safetensors file made by `recolor train` works too: --model path/to/model.safetensors; "
                  "Hub models: --model owner/repo[@revision].")
