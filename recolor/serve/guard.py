"""What every request passes before the app sees it: its Host, the access token and the size of its body.

- Host: a server bound to the loopback answers only to loopback names, so a web page elsewhere cannot reach
  it through DNS rebinding (a name of its own that resolves to 127.0.0.1).
- Token: with one set, every /api/ call must carry it, as the X-Recolor-Token header or ?token= (EventSource
  and <video src> cannot send headers). The page itself is public; what it can do is not.
- Size: a body over the limit is refused with 413, from its Content-Length before any of it is read, or as
  soon as a chunked one goes over.
"""
from __future__ import annotations

import secrets
from typing import Callable
from urllib.parse import parse_qs

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

TOKEN_HEADER = "x-recolor-token"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


class TooLarge(Exception):
    """The body went over its limit while it was being read."""


def host_name(host_header: str) -> str:
    """'127.0.0.1:8000' -> '127.0.0.1', '[::1]:8000' -> '[::1]'."""
    if host_header.startswith("["):
        return host_header.split("]")[0] + "]"
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


class Guard:
    def __init__(self, app: ASGIApp, token: str | None, loopback_only: bool, body_limit: Callable[[str], int]):
        self.app = app
        self.token = token
        self.loopback_only = loopback_only
        self.body_limit = body_limit  # path -> most bytes a request body may have

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self.refusal(scope, headers)
        if refusal is not None:
            await JSONResponse({"error": refusal[1]}, refusal[0])(scope, receive, send)
            return
        await self.limited(scope, receive, send, headers)

    def refusal(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str] | None:
        if self.loopback_only and host_name(headers.get("host", "")).lower() not in LOOPBACK_NAMES:
            return 400, "this server answers only to 127.0.0.1 and localhost (start it with --host to share it)"
        if self.token is None or not scope["path"].startswith("/api/"):
            return None
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        given = headers.get(TOKEN_HEADER) or (query.get("token") or [""])[0]
        if not secrets.compare_digest(given.encode(), self.token.encode()):
            return 401, "this server needs its access token: open the address it printed (the one with ?token=)"
        return None

    async def limited(self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str]) -> None:
        limit = self.body_limit(scope["path"])
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            await too_large(int(length), limit)(scope, receive, send)
            return
        seen, started = 0, False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise TooLarge
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except TooLarge:
            if not started:
                await too_large(None, limit)(scope, receive, send)


def too_large(size: int | None, limit: int) -> JSONResponse:
    """size: the Content-Length, or None for a chunked body that went over."""
    what = "the upload" if size is None else f"{size / 1e6:.1f} MB"
    return JSONResponse({"error": f"too large: {what} is over this server's limit of {limit / 1e6:g} MB"}, 413)
