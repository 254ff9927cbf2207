"""`recolor models`: the models recolor knows."""
from __future__ import annotations

from rich.console import Console

from .app import app


@app.command("models")
def models_command() -> None:
    """The models recolor knows: embedded, cached from the Hub, and the architectures it can train."""
    from .report import print_models
    print_models(Console())
