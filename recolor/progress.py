"""Progress display: the home of the tool's Rich progress bars."""
from __future__ import annotations


class RichReporter:
    """Training progress (a `recolor.training.Reporter`): stage, step/total, losses, images/s and ETA as a Rich
    progress bar."""

    def __init__(self, console=None):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
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
