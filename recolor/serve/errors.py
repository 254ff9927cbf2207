"""The errors the HTTP API answers with: each becomes `{"error": "one line"}` and a 4xx/5xx status."""
from __future__ import annotations


class ApiError(Exception):
    """A request the server refuses; `message` is one line that says why and what to do."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class Busy(ApiError):
    """The queue is full: come back later (503 with Retry-After, which the page honours)."""

    def __init__(self, message: str, retry_after_s: int = 2):
        super().__init__(503, message, {"Retry-After": str(retry_after_s)})
