"""What the loop reports, and through what: the `Reporter` interface (a stage starts, a step ends, a line of
news), `NullReporter` for ranks other than 0 and for library use, and `LogWindow`, the running means between
two log lines. The Rich progress bar that implements `Reporter` for the CLI lives in `recolor.cli.report`."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

import torch


class Reporter(Protocol):
    def stage(self, name: str, total: int, start: int) -> None: ...
    def update(self, step: int, text: str) -> None: ...
    def info(self, text: str) -> None: ...
    def close(self) -> None: ...


class NullReporter:
    def stage(self, name: str, total: int, start: int) -> None: pass
    def update(self, step: int, text: str) -> None: pass
    def info(self, text: str) -> None: pass
    def close(self) -> None: pass


@dataclass
class LogWindow:
    """The steps since the last log line: loss sums, images seen and when the window opened."""
    start: float = field(default_factory=time.perf_counter)
    images: int = 0
    steps: int = 0
    sums: dict[str, torch.Tensor] = field(default_factory=dict)

    def add(self, logs: dict[str, torch.Tensor], images: int) -> None:
        self.images += images
        for k, v in logs.items():
            self.sums[k] = self.sums.get(k, 0.0) + v.detach()  # tensors: no GPU sync per step
        self.steps += 1

    def take(self) -> tuple[dict[str, float], float]:
        """(mean of each loss, images per second) over the window, which then starts afresh. The means are the
        window's one GPU sync."""
        rate = self.images / max(1e-9, time.perf_counter() - self.start)
        means = {k: round(float(v) / self.steps, 5) for k, v in self.sums.items()}
        self.start, self.images, self.steps, self.sums = time.perf_counter(), 0, 0, {}
        return means, rate
