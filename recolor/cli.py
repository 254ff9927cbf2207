"""The `recolor` command line: a thin layer over the Python API.

Each command parses options, builds a config, calls the library and reports with Rich. Heavy modules
(torch, cv2) are imported inside the commands, so `recolor --help` stays instant.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from . import __version__

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Bring black-and-white photos and film back to colour.")
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


def fail(message: str, code: int = 2) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def load_colorizer(model: str, device: str, precision: str):
    from .engine import Colorizer
    from .weights import WeightsError
    try:
        return Colorizer.from_pretrained(model, device, precision)
    except (WeightsError, ValueError, RuntimeError) as e:
        fail(str(e).splitlines()[0])


ModelOpt = Annotated[str, typer.Option("--model", "-m", help="default, a .safetensors file, or owner/repo[@rev] on the Hub.")]
DeviceOpt = Annotated[str, typer.Option("--device", "-d", help="auto (cuda > mps > cpu), cpu, cuda, cuda:N, mps.")]
PrecisionOpt = Annotated[str, typer.Option("--precision", help="auto, fp32, fp16 or bf16 (autocast).")]


@app.command("image")
def image_command(
    inputs: Annotated[list[Path], typer.Argument(help="Image files and/or folders (searched recursively).")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output folder (mirrors inputs), or a file for one input.")] = None,
    render_factor: Annotated[int, typer.Option("--render-factor", "-r", min=7, max=64, help="Render size = factor × 16 px.")] = 35,
    model: ModelOpt = "default",
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Images per network call.")] = 4,
    compare: Annotated[bool, typer.Option("--compare", help="Also write <name>_compare<ext>: a before|after sheet.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs (inputs are never replaced).")] = False,
    max_pixels: Annotated[int, typer.Option("--max-pixels", min=1, help="Refuse images larger than this many pixels.")] = 100_000_000,
) -> None:
    """Colorize photos: writes <name>_color<ext> beside each input, or under --out."""
    from .files import plan_jobs
    from .report import run_with_progress
    plan = plan_jobs(inputs, out, compare)
    if not plan.jobs and plan.errors:
        fail("; ".join(f"{p}: {m}" if not m.startswith(str(p)) else m for p, m in plan.errors))
    colorizer = load_colorizer(model, device, precision)
    failed = run_with_progress(console, colorizer, plan, render_factor, batch_size, overwrite, max_pixels)
    raise typer.Exit(1 if failed else 0)


app.command("colorize", help="Alias of `recolor image`.")(image_command)


@app.command("models")
def models_command() -> None:
    """The models recolor knows: embedded, cached from the Hub, and the architectures it can train."""
    from .report import print_models
    print_models(Console())


if __name__ == "__main__":
    app()
