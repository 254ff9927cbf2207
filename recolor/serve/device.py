"""One device, one inference at a time.

The engine is not safe to call from several threads at once (and on 2 CPU cores two calls would only slow
each other down), so photos and film batches take turns through one lock per server. Requests are admitted
through a bounded number of slots: beyond it the server answers "busy" at once instead of piling up uploads
in memory.
"""
from __future__ import annotations

import asyncio
import ctypes
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import AsyncIterator, Callable, TypeVar

from .errors import Busy

T = TypeVar("T")


class Device:
    def __init__(self, capacity: int, colorizers=()):
        # One thread does every photo, one after another: big buffers are freed and reused in one malloc arena
        # (with a pool of threads the server kept ~50 MB more after 10 concurrent clients).
        self.worker = ThreadPoolExecutor(1, thread_name_prefix="recolor-photos")
        self.lock = threading.Lock()  # held for each inference (a photo, or one batch of a film's frames)
        self.capacity = capacity  # photo requests with their upload in: waiting for the device or running
        self.active = 0  # only touched from the event loop's thread, so no lock is needed
        self.colorizers = tuple(colorizers)  # whose memory is handed back when the device goes idle

    def refuse_if_full(self) -> None:
        if self.active >= self.capacity:
            raise Busy(f"busy: {self.active} photos are being colorized; try again in a moment")

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Admit one request whose upload is in, or refuse it with 503 when `capacity` are already in."""
        self.refuse_if_full()
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1
            if self.active == 0:
                self._after_burst()

    async def run(self, work: Callable[..., T], *args) -> T:
        """Run work(*args) on the photo thread, holding the device. A request cancelled while it waits (the
        client went away) is dropped from the queue."""
        return await asyncio.wrap_future(self.worker.submit(self._locked, work, *args))

    def _after_burst(self) -> None:
        try:
            self.worker.submit(self.release_memory)  # on the photo thread: the event loop never waits for it
        except RuntimeError:  # shut down: the server is stopping
            pass

    def release_memory(self) -> None:
        """After the last photo of a burst and after each film: what the models keep for the largest batch so
        far (ONNX Runtime's arena, torch's CUDA cache), then freed heap pages. Without it, and before a reference
        cycle in the film pipeline was broken (video/pipeline.py), a server grew 20-60 MB a film
        (research/serve_checks.py)."""
        with self.lock:
            for colorizer in self.colorizers:
                colorizer.runner.free_memory()
        release_free_memory()

    def close(self) -> None:
        self.worker.shutdown(cancel_futures=True)

    def _locked(self, work: Callable[..., T], *args) -> T:
        with self.lock:
            return work(*args)


def release_free_memory() -> None:
    """Hand freed heap pages back to the OS (glibc's malloc_trim): the server then idles ~45 MB smaller
    (benchmarks/README.md). Elsewhere (macOS, musl, Windows) there is no such call."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):
        pass


class TakingTurns:
    """A Colorizer whose `chroma` holds the device lock, for `colorize_video`: a film takes the device one batch
    at a time, so photos dropped on the page meanwhile are not stuck behind a whole film."""

    def __init__(self, colorizer, lock: threading.Lock):
        self._colorizer = colorizer
        self._lock = lock

    def chroma(self, *args, **kwargs):
        with self._lock:
            return self._colorizer.chroma(*args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._colorizer, name)  # device, runtime, ...: read-only facts of the colorizer
