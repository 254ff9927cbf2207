"""The Typer app every command registers on, and what the commands share: the Rich console, `fail` (one line,
then exit), `require_extra` and `load_colorizer`."""
from __future__ import annotations

import importlib.util
import logging
import os
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from .. import __version__

# The optional modules, by the extra of pyproject.toml that installs them: the base install is CPU inference.
EXTRAS = {"torch": "torch", "torchvision": "torch", "onnx": "torch", "fastapi": "serve", "starlette": "serve",
          "uvicorn": "serve", "multipart": "serve", "python_multipart": "serve"}


def missing_extra(module: str | None, extra: str | None = None) -> str | None:
    """The one-line error for an optional module that is not installed, or None if `module` is not one."""
    top = (module or "").partition(".")[0]
    if top not in EXTRAS:
        return None
    return f"{top} is not installed; this needs it: pip install 'recolor[{extra or EXTRAS[top]}]'"


class App(typer.Typer):
    """Typer, but a command that reaches a module of an extra that is not installed (torch for --runtime torch
    or a GPU, say) ends in one line naming the extra, not in a traceback."""

    def __call__(self, *args, **kwargs):
        try:
            return super().__call__(*args, **kwargs)
        except ModuleNotFoundError as e:
            message = missing_extra(e.name)
            if message is None:
                raise
            console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
            sys.exit(2)


# rich_markup_mode=None: help texts are plain text, so `recolor[onnx]` or `owner/repo[@rev]` print as written
app = App(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None, help="Bring black-and-white photos and film back to colour.")
console = Console(stderr=True)


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


def require_extra(extra: str, *modules: str) -> None:
    """Fail in one line, before any work, if a module this command needs (from `extra`) is not installed."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            fail(missing_extra(module, extra))


def load_colorizer(model: str, device: str, precision: str, runtime: str = "auto"):
    from ..engine import Colorizer
    from ..weights import WeightsError
    try:
        return Colorizer.from_pretrained(model, device, precision, runtime)
    except (WeightsError, ValueError, RuntimeError) as e:
        fail(str(e).splitlines()[0])
