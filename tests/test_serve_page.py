"""What the page of `recolor serve` is told by the server, through FastAPI's TestClient: the settings it reads
from /api/health instead of restating them, HEAD on its files, and messages written for the page's user (the
server's own limits, the page's field names rather than the CLI's options). The page itself: test_serve_browser.py.
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from recolor import defaults
from recolor.images import IMAGE_EXTENSIONS, PIL_BOMB_PIXELS
from recolor.serve import ServeConfig
from recolor.serve.app import create_app
from recolor.serve.jobs import FINISHED, SUFFIXES


@pytest.fixture(scope="module")
def colorizer():
    from recolor import Colorizer
    return Colorizer.from_pretrained("default", device="cpu")


@pytest.fixture
def serve(colorizer):
    """serve(**ServeConfig fields) -> a started TestClient, stopped at the end."""
    clients = []

    def start(**options) -> TestClient:
        clients.append(TestClient(create_app({"default": colorizer}, ServeConfig(**options)),
                                  base_url="http://127.0.0.1:8000"))
        return clients[-1].__enter__()
    yield start
    for client in clients:
        client.__exit__(None, None, None)


def one_line_error(response, status: int) -> str:
    assert response.status_code == status, response.text
    message = response.json()["error"]
    assert "\n" not in message and "Traceback" not in message
    return message


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims width×height gray pixels: enough for a reader that looks at its header first."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        chunk(b"IEND", b"")


def test_health_gives_the_page_its_render_factors_suffixes_and_job_states(serve):
    health = serve().get("/api/health").json()
    assert health["render_factor"] == {"min": defaults.RENDER_FACTOR_MIN, "max": defaults.RENDER_FACTOR_MAX,
                                       "photo": defaults.PHOTO_RENDER_FACTOR, "film": defaults.FILM_RENDER_FACTOR}
    assert health["suffixes"] == {"photo": list(IMAGE_EXTENSIONS), "film": list(SUFFIXES)}
    assert health["job_states"]["finished"] == list(FINISHED)
    assert health["job_states"]["all"][:2] == ["queued", "running"]
    assert set(FINISHED) < set(health["job_states"]["all"])


@pytest.mark.parametrize("path, media_type", [("/", "text/html"), ("/app.js", "text/javascript"),
                                              ("/style.css", "text/css")])
def test_head_of_the_page_answers_like_get(serve, path, media_type):
    client = serve()
    head, get = client.head(path), client.get(path)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"].startswith(media_type)
    assert head.headers["content-security-policy"] == get.headers["content-security-policy"]


@pytest.mark.parametrize("limit", [ServeConfig().max_pixels, 1_000_000])
def test_a_photo_too_big_for_pillow_is_refused_with_the_servers_own_limit(serve, limit):
    data = png_header(20_000, 10_000)  # 200 MP: Pillow will not even open it
    message = one_line_error(serve(max_pixels=limit).post("/api/colorize", files={"file": ("huge.png", data)}), 413)
    assert message.startswith("huge.png: ") and f"limit of {limit:,} pixels" in message
    assert f"{PIL_BOMB_PIXELS:,}" not in message and f"{PIL_BOMB_PIXELS / 1e6:.0f}" not in message


def test_a_photo_over_the_limit_says_its_size_and_the_limit(serve):
    data = cv2.imencode(".png", np.zeros((2000, 3000), np.uint8))[1].tobytes()
    message = one_line_error(serve(max_pixels=5_000_000).post("/api/colorize", files={"file": ("big.png", data)}),
                             413)
    assert message == "big.png: 3000×2000 = 6,000,000 pixels, over this server's limit of 5,000,000 pixels"


@pytest.fixture(scope="module")
def film(tmp_path_factory) -> bytes:
    from test_serve import make_film
    return make_film(tmp_path_factory.mktemp("film") / "reel.mp4").read_bytes()


def test_film_errors_name_the_pages_fields_not_the_clis_options(serve, film):
    client = serve()
    message = one_line_error(client.post("/api/jobs", files={"file": ("reel.mp4", film)}, data={"duration": "0"}),
                             400)
    assert "--" not in message and "duration" in message
    job = client.post("/api/jobs", files={"file": ("reel.mp4", film)}, data={"start": "100"})  # past its end
    assert job.status_code == 202, job.text
    with client.stream("GET", f"/api/jobs/{job.json()['id']}/events") as events:
        last = [line for line in events.iter_lines() if line.startswith("data:")][-1]
    assert '"state": "failed"' in last
    assert "start time 100 s" in last and "--" not in last, last


def test_the_page_restates_no_setting_the_server_gives():
    """The page's files carry no render-factor range, suffix list or job state of their own."""
    static = Path(__file__).resolve().parents[1] / "recolor" / "serve" / "static"
    page = (static / "index.html").read_text() + (static / "app.js").read_text()
    for restated in ('min="7"', 'max="64"', 'value="35"', 'value="21"', ".tiff", ".mkv", "'done', 'failed'", "mp4|"):
        assert restated not in page, restated
