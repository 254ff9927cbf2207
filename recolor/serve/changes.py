"""News that some film job changed, for the progress streams: announced from any thread (the film worker, a
request), awaited on the event loop."""
from __future__ import annotations

import asyncio


class Changes:
    """News that some job changed: announced from any thread, awaited by progress streams on the event loop."""

    def __init__(self):
        self.loop: asyncio.AbstractEventLoop | None = None
        self.future: asyncio.Future | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop, self.future = loop, loop.create_future()

    def announce(self) -> None:
        try:
            self.loop.call_soon_threadsafe(self._wake)
        except (AttributeError, RuntimeError):  # not started, or the loop has closed (shutting down)
            pass

    def _wake(self) -> None:
        self.future.set_result(None)
        self.future = self.loop.create_future()

    async def wait(self, timeout: float) -> bool:
        """True when something changed, False after `timeout` seconds without a change."""
        try:
            await asyncio.wait_for(asyncio.shield(self.future), timeout)
            return True
        except asyncio.TimeoutError:
            return False
