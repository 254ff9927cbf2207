"""What every request passes before the app sees it: where it comes from, its token, and its body's size and pace.

- Host: a server bound to the loopback answers only to loopback names (403 otherwise), so a web page elsewhere
  cannot reach it through DNS rebinding (a name of its own that resolves to 127.0.0.1).
- Origin: what a browser sends for another site's page carries that site's Origin. It is refused (403) unless it
  is this server's own (the page) or one the user allowed (--allow-origin); scripts send none and pass.
- Token: with one set, every /api/ call must carry it, as the X-Recolor-Token header or ?token= (EventSource
  and <video src> cannot send headers). The page itself is public; what it can do is not.
- Size: a body over the limit is refused with 413, from its Content-Length before any of it is read, or as
  soon as a chunked one goes over.
- Pace: a body must keep coming, `pace.grace_s` plus one second per `pace.min_rate` bytes so far; one that falls
  behind gets 408 and its connection is closed. The app reads a whole body before it asks for a work slot, so a
  stalled upload costs a socket until then, never a slot.
- A client that goes away mid-upload is one line in the log, not a traceback.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from typing import Callable
from urllib.parse import parse_qs, urlsplit

from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("recolor")
TOKEN_HEADER = "x-recolor-token"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


class TooLarge(Exception):
    """The body went over its limit while it was being read."""


class TooSlow(Exception):
    """The body fell behind its pace while it was being read."""


@dataclass(frozen=True)
class Pace:
    grace_s: float  # a body may send nothing at all for this long ...
    min_rate: float  # ... and must then keep up this many bytes per second on average


def host_name(host_header: str) -> str:
    """'127.0.0.1:8000' -> '127.0.0.1', '[::1]:8000' -> '[::1]'."""
    if host_header.startswith("["):
        return host_header.split("]")[0] + "]"
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def own_origin(origin: str, host_header: str) -> bool:
    """The page's own requests: the Origin names the very host and port the request was sent to."""
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and bool(host_header) and parts.netloc.lower() == host_header.lower()


class Guard:
    def __init__(self, app: ASGIApp, token: str | None, loopback_only: bool, body_limit: Callable[[str], int],
                 pace: Pace, allow_origins: tuple[str, ...] = ()):
        self.app = app
        self.token = token
        self.loopback_only = loopback_only
        self.body_limit = body_limit  # path -> most bytes a request body may have
        self.pace = pace
        self.allow_origins = allow_origins

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
        host = headers.get("host", "")
        if self.loopback_only and host_name(host).lower() not in LOOPBACK_NAMES:
            return 403, "this server answers only to 127.0.0.1 and localhost (start it with --host to share it)"
        origin = headers.get("origin")
        if origin is not None and not own_origin(origin, host) and origin.lower() not in self.allow_origins:
            return 403, (f"requests from other sites' pages are refused ({origin[:80]}); start the server with "
                         f"--allow-origin {origin[:80]} to allow that site")
        if self.token is None or not scope["path"].startswith("/api/"):
            return None
        if origin is not None and scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            return None  # an allowed site's preflight, which cannot carry the token (CORS answers it)
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
        loop = asyncio.get_running_loop()
        begun, seen, complete, started = loop.time(), 0, False, False

        async def paced_receive() -> Message:
            nonlocal seen, complete
            if complete:  # the body is in: what follows is waiting for a disconnect (a stream), unhurried
                return await receive()
            due = begun + self.pace.grace_s + seen / self.pace.min_rate
            try:
                message = await asyncio.wait_for(receive(), max(due - loop.time(), 0.0))
            except asyncio.TimeoutError:
                raise TooSlow from None
            seen += len(message.get("body", b""))
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            if seen > limit:
                raise TooLarge
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        what = f"{scope['method']} {scope['path']}"
        try:
            await self.app(scope, paced_receive, watching_send)
        except TooLarge:
            if not started:
                await too_large(None, limit)(scope, receive, send)
        except TooSlow:
            seconds = loop.time() - begun
            log.warning("%s: the upload stalled (%d bytes in %.0f s); answered 408", what, seen, seconds)
            if not started:
                await JSONResponse({"error": f"the upload was too slow ({seen / 1e6:.1f} MB in {seconds:.0f} s): "
                                             f"send it again"}, 408, headers={"Connection": "close"})(
                    scope, receive, send)
        except ClientDisconnect:
            log.warning("%s: the client went away during the upload (%d bytes in)", what, seen)


def too_large(size: int | None, limit: int) -> JSONResponse:
    """size: the Content-Length, or None for a chunked body that went over."""
    what = "the upload" if size is None else f"{size / 1e6:.1f} MB"
    return JSONResponse({"error": f"too large: {what} is over this server's limit of {limit / 1e6:g} MB"}, 413)
