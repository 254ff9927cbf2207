"""`recolor serve`: a local web page for colorizing photos and films in a browser, and the HTTP API it uses.

    recolor serve                       # prints http://127.0.0.1:8000/ : open it in a browser
    recolor serve --host 0.0.0.0        # share it on a network: a random --token is made and printed

The page is three static files shipped in the package (static/): no CDN, no web fonts, no analytics, so it
works on a machine with no internet, and its Content-Security-Policy forbids it to load anything from
elsewhere. The models load once, when the server starts; one device runs one inference at a time (device.py);
photo requests and film jobs beyond a bounded queue get a clear 503 "busy". Uploads have size and pixel limits
(413), temp files go when a request or job ends and when the server stops, and no path from a request ever
reaches the file system. The API is listed in app.py.
"""
from __future__ import annotations

import ipaddress
import secrets
import socket
from dataclasses import dataclass, replace
from urllib.parse import urlencode, urlsplit

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
BACKLOG = 2048  # as uvicorn's default


class ServeError(Exception):
    """The server cannot start (the port is taken, say); one line."""


@dataclass(frozen=True)
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8000  # 0: any free port (the printed address says which)
    token: str | None = None  # required on every /api/ call when set
    max_upload_mb: float = 50.0  # one photo request: the photo and its reference photo together
    max_film_mb: float = 1000.0
    max_pixels: int = 50_000_000
    queue: int = 8  # photo requests being colorized at once (one runs, the rest wait); more get "busy"
    film_queue: int = 4  # films waiting behind the running one; more get "busy"
    allow_origins: tuple[str, ...] = ()  # other sites whose pages may use the API (scheme://host[:port])
    upload_grace_s: float = 10.0  # an upload may send nothing for this long, then must keep up ...
    upload_min_rate: float = 20_000  # ... this many bytes a second on average, or get 408 (guard.py)

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"--port {self.port} is out of range: use 0–65535")
        if min(self.max_upload_mb, self.max_film_mb) <= 0 or self.max_pixels < 1:
            raise ValueError("--max-upload-mb, --max-film-mb and --max-pixels must be positive")
        if self.queue < 1 or self.film_queue < 1:
            raise ValueError("the queues must hold at least one request")
        if self.token is not None and not self.token.strip():
            raise ValueError("--token must not be empty")
        if not (self.upload_grace_s > 0 and self.upload_min_rate > 0):
            raise ValueError("the upload grace period and minimum rate must be positive")
        object.__setattr__(self, "allow_origins", tuple(map(origin_of, self.allow_origins)))

    @property
    def loopback(self) -> bool:
        """Bound to this machine only (then the server answers only to loopback names: see guard.py)."""
        if self.host in LOOPBACK_HOSTS:
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def origin_of(text: str) -> str:
    """'http://localhost:3000/' -> 'http://localhost:3000', as a browser sends it in its Origin header."""
    parts = urlsplit(text.strip().rstrip("/").lower())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query or parts.fragment:
        raise ValueError(f"--allow-origin {text!r} is not an origin: write scheme://host[:port], "
                         f"e.g. http://localhost:3000")
    return f"{parts.scheme}://{parts.netloc}"


def with_token(config: ServeConfig) -> ServeConfig:
    """A server shared on a network gets a random token unless one was given."""
    if config.token is None and not config.loopback:
        return replace(config, token=secrets.token_urlsafe(12))
    return config


def listen(host: str, port: int) -> socket.socket:
    """Bind the server's socket before the models load, so a taken port fails at once."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)  # from here, connections wait in the backlog until the server takes them
    except OSError as e:
        raise ServeError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None
    return sock


def page_address(config: ServeConfig, sock: socket.socket) -> str:
    """The page's address on this machine, with the token when there is one."""
    host = config.host if config.loopback else "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    query = "?" + urlencode({"token": config.token}) if config.token else ""
    return f"http://{host}:{sock.getsockname()[1]}/{query}"


def say_now(line: str) -> None:
    print(line, flush=True)  # flushed: a script (or a test) waits for this line on a pipe


def run(config: ServeConfig, sock: socket.socket, colorizers: dict, say=say_now) -> None:
    """Serve until Ctrl-C or SIGTERM. colorizers: model name -> loaded Colorizer (the first is the default)."""
    from .app import create_app
    config = with_token(config)
    app = create_app(colorizers, config)
    address = page_address(config, sock)
    if config.loopback:
        say(f"recolor serve: open {address} in a browser (Ctrl-C stops it)")
    else:
        say(f"recolor serve: listening on {config.host}:{sock.getsockname()[1]} for other machines too: open "
            f"{address} here, or the same with this machine's address elsewhere (Ctrl-C stops it)")
    uvicorn_server(app).run(sockets=[sock])


def uvicorn_server(app, **options):
    """The app in uvicorn, which stops promptly: open progress streams end as soon as it is asked to stop."""
    import uvicorn

    class Server(uvicorn.Server):
        async def shutdown(self, sockets=None) -> None:
            app.state.server.jobs.stop_streams()  # else uvicorn waits for them, then cancels them noisily
            await super().shutdown(sockets)

    return Server(uvicorn.Config(app, **{"log_level": "warning", "access_log": False, "server_header": False,
                                         "timeout_graceful_shutdown": 3, **options}))
