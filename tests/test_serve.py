"""`recolor serve`'s HTTP API through FastAPI's TestClient, with the real default model on tiny images and clips.

Concurrency (busy answers, cancelling a running film) is made deterministic by holding the device lock from the
test: a request that got in waits on it, so the test knows where each request is without timing anything.
"""
from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from recolor.serve import ServeConfig
from recolor.serve.app import create_app

LOCAL = "http://127.0.0.1:8000"


# ----------------------------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def default_colorizer():
    """The real shipped model, as `recolor serve` loads it on the CPU (ONNX Runtime)."""
    from recolor import Colorizer
    return Colorizer.from_pretrained("default", device="cpu")


@pytest.fixture
def serve(default_colorizer):
    """serve(**ServeConfig fields) -> a started TestClient; every one is stopped (lifespan shutdown) at the end."""
    clients = []

    def start(colorizers=None, base_url=LOCAL, **options) -> TestClient:
        app = create_app(colorizers or {"default": default_colorizer}, ServeConfig(**options))
        client = TestClient(app, base_url=base_url)
        client.__enter__()
        clients.append(client)
        return client
    yield start
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(serve) -> TestClient:
    return serve()


def server_of(client: TestClient):
    return client.app.state.server


def png(image: np.ndarray) -> bytes:
    """RGB(A) or gray array -> PNG bytes."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA if image.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    return cv2.imencode(".png", image)[1].tobytes()


def decode(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


@pytest.fixture(scope="module")
def small_gray(gray_photo) -> np.ndarray:
    """camera.png cut to an odd, non-square 90×70."""
    return np.ascontiguousarray(gray_photo[100:170, 200:290])


def post_photo(client, data: bytes, name: str = "old.png", **fields):
    files = {"file": (name, data, "application/octet-stream")}
    if "reference" in fields:
        files["reference"] = ("ref.png", fields.pop("reference"), "image/png")
    return client.post("/api/colorize", files=files, data={k: str(v) for k, v in fields.items()})


def assert_error(response, status: int, *words: str) -> str:
    """A refusal: the status, a JSON body of one line that says why, never a traceback."""
    assert response.status_code == status, response.text
    message = response.json()["error"]
    assert "\n" not in message and "Traceback" not in message
    for word in words:
        assert word in message, message
    return message


def wait_until(condition, timeout: float = 60.0) -> None:
    """Poll a condition (not a sleep-as-synchronisation: it returns as soon as the condition holds)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def make_film(path: Path, frames: int = 12, size=(64, 48), rate: int = 12) -> Path:
    """A small gray H.264 clip that pans across a smooth texture."""
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.random((size[1], size[0] + 2 * frames)).astype(np.float32), (0, 0), 3)
    texture = (40 + 180 * (texture - texture.min()) / np.ptp(texture)).astype(np.uint8)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(frames):
            gray = np.ascontiguousarray(texture[:, 2 * i:2 * i + size[0]])
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.dstack([gray] * 3), format="rgb24")))
        out.mux(stream.encode(None))
    return path


def frame_count(data: bytes) -> tuple[int, tuple[int, int]]:
    with av.open(io.BytesIO(data)) as film:
        frames = [f for f in film.decode(video=0)]
    return len(frames), (frames[0].width, frames[0].height)


@pytest.fixture(scope="module")
def film(tmp_path_factory) -> bytes:
    return make_film(tmp_path_factory.mktemp("films") / "reel.mp4").read_bytes()


def post_film(client, data: bytes, name: str = "reel.mp4", **fields):
    return client.post("/api/jobs", files={"file": (name, data, "video/mp4")},
                       data={k: str(v) for k, v in fields.items()})


def finish(client, job_id: str) -> list[dict]:
    """Follow the job's server-sent events to the end; returns every state it sent."""
    response = client.get(f"/api/jobs/{job_id}/events")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    return [json.loads(line[len("data: "):]) for line in response.text.splitlines() if line.startswith("data: ")]


# ----------------------------------------------------------------------------------------------- the basics
def test_health_names_model_device_and_version(client):
    response = client.get("/api/health")
    assert response.status_code == 200
    health = response.json()
    assert health["model"] == "default" and health["device"] == "cpu" and health["version"]
    assert [m["name"] for m in health["models"]] == ["default"]


def test_no_api_docs_pages_that_would_load_a_cdn(client):
    for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
        assert_error(client.get(path), 404, "not found")


def test_the_page_is_served_with_a_policy_that_forbids_loading_from_elsewhere(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for name in ("/app.js", "/style.css"):
        assert client.get(name).status_code == 200
    for text in (page.text, client.get("/app.js").text, client.get("/style.css").text):
        assert "http://" not in text and "https://" not in text and "//cdn" not in text


def test_a_photo_comes_back_in_colour_at_the_same_size_with_its_luminance(client, small_gray):
    response = post_photo(client, png(small_gray), render_factor=12)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    rgb = cv2.cvtColor(decode(response.content), cv2.COLOR_BGR2RGB)
    assert rgb.shape == (70, 90, 3)
    assert np.abs(rgb[..., 0].astype(int) - rgb[..., 2]).mean() > 1  # colour, not gray
    luminance = cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)[..., 0]
    expected = cv2.cvtColor(np.dstack([small_gray] * 3).astype(np.float32) / 255, cv2.COLOR_RGB2Lab)[..., 0]
    assert np.abs(luminance - expected).max() < 1.5


@pytest.mark.parametrize("fmt, media_type", [("jpeg", "image/jpeg"), ("webp", "image/webp")])
def test_other_output_formats(client, small_gray, fmt, media_type):
    response = post_photo(client, png(small_gray), format=fmt)
    assert response.status_code == 200 and response.headers["content-type"] == media_type
    assert decode(response.content).shape == (70, 90, 3)


def test_alpha_is_kept_in_png(client, photo):
    rgba = np.dstack([photo[:40, :50], np.full((40, 50), 128, np.uint8)])
    out = decode(post_photo(client, png(rgba)).content)
    assert out.shape == (40, 50, 4) and (out[..., 3] == 128).all()


def test_a_phone_photo_comes_back_upright(client, small_gray):
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: a viewer turns it 90° clockwise
    Image.fromarray(small_gray).save(buffer, "JPEG", exif=exif)
    out = decode(post_photo(client, buffer.getvalue(), "phone.jpg").content)
    assert out.shape[:2] == (90, 70)


# ----------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("data, words", [
    (b"", ["old.png", "empty"]),
    (b"this is not a photo", ["old.png", "not an image"]),
])
def test_a_bad_file_is_a_one_line_400(client, data, words):
    assert_error(post_photo(client, data), 400, *words)


def test_a_truncated_photo_is_a_one_line_400(client, small_gray):
    data = cv2.imencode(".jpg", small_gray)[1].tobytes()
    assert_error(post_photo(client, data[:len(data) // 3], "cut.jpg"), 400, "cut.jpg")


@pytest.mark.parametrize("fields, words", [
    ({"render_factor": 99}, ["render_factor", "7–64"]),
    ({"render_factor": "lots"}, ["render_factor", "whole number"]),
    ({"model": "../../etc/passwd"}, ["model", "default"]),
    ({"format": "gif"}, ["format", "png"]),
    ({"hints": "{not json"}, ["hints", "not valid JSON"]),
    ({"hints": json.dumps({"points": [{"x": 1}]})}, ["hints", "needs"]),
    ({"hints": json.dumps({"points": [], "reference": "/etc/passwd"})}, ["reference", "file part"]),
])
def test_bad_fields_are_one_line_400s(client, small_gray, fields, words):
    assert_error(post_photo(client, png(small_gray), **fields), 400, *words)


def test_no_file_part_is_a_400(client):
    assert_error(client.post("/api/colorize", data={"render_factor": "20"}), 400, '"file"')
    assert_error(client.post("/api/colorize", content=b"raw bytes", headers={"content-type": "image/png"}), 400)


def test_unknown_routes_and_methods_are_json(client):
    assert_error(client.get("/api/nothing"), 404, "not found")
    assert_error(client.get("/api/colorize"), 405)


# ----------------------------------------------------------------------------------------------- hints
class Spy:
    """A colorizer that records what colorize() was asked, then asks the real one without hints."""

    def __init__(self, real):
        self.real, self.calls = real, []

    def __getattr__(self, name):
        return getattr(self.real, name)

    def colorize(self, image, render_factor, hints=None, reference=None):
        self.calls.append({"shape": image.shape, "render_factor": render_factor, "hints": hints,
                           "reference": None if reference is None else reference.shape})
        return self.real.colorize(image, render_factor)


def test_hints_and_a_reference_photo_reach_the_engine(serve, default_colorizer, small_gray, photo):
    spy = Spy(default_colorizer)
    client = serve({"default": spy})
    hints = {"points": [{"x": 10, "y": 20, "color": "#a03020"}, {"x": 80, "y": 5, "color": "navy"}]}
    response = post_photo(client, png(small_gray), render_factor=16, hints=json.dumps(hints),
                          reference=png(photo[:30, :40]))
    assert response.status_code == 200, response.text
    call = spy.calls[-1]
    assert call["shape"] == (70, 90) and call["render_factor"] == 16 and call["reference"] == (30, 40, 3)
    assert [(h.x, h.y) for h in call["hints"]] == [(10, 20), (80, 5)]
    assert call["hints"][0].ab[0] > 20 and call["hints"][1].ab[1] < -20  # red-ish a, blue b


def test_hints_through_the_real_engine_and_a_choice_of_models(serve, default_colorizer, colorizer, small_gray):
    """Every model takes hints: propagation holds them, whatever the network."""
    client = serve({"default": default_colorizer, "other": colorizer})
    assert [m["name"] for m in client.get("/api/health").json()["models"]] == ["default", "other"]
    hints = json.dumps({"points": [{"x": 30, "y": 30, "color": "#20a040"}]})
    for model in ("default", "other"):
        plain = decode(post_photo(client, png(small_gray), model=model).content).astype(int)
        hinted = post_photo(client, png(small_gray), model=model, hints=hints)
        assert hinted.status_code == 200, hinted.text
        assert np.abs(decode(hinted.content).astype(int) - plain).max() > 10
    outside = json.dumps({"points": [{"x": 300, "y": 30, "color": "red"}]})
    assert_error(post_photo(client, png(small_gray), model="other", hints=outside), 400, "outside", "90×70")


def test_a_reference_photo_changes_the_palette(client, small_gray):
    plain = decode(post_photo(client, png(small_gray)).content).astype(int)
    green = np.zeros((32, 32, 3), np.uint8)
    green[..., 1] = 200
    tinted = decode(post_photo(client, png(small_gray), reference=png(green)).content).astype(int)
    assert tinted.shape == plain.shape
    assert (tinted[..., 1] - tinted[..., 2]).mean() > (plain[..., 1] - plain[..., 2]).mean()  # greener (BGR)


# ----------------------------------------------------------------------------------------------- limits
def test_an_upload_over_the_size_limit_is_413_before_it_is_read(serve, small_gray):
    client = serve(max_upload_mb=0.001)
    assert_error(post_photo(client, png(small_gray) + b"\0" * 2000), 413, "limit of 0.001 MB")


def test_a_chunked_upload_over_the_limit_is_413(serve):
    client = serve(max_upload_mb=0.001)
    body = (b"x" * 500 for _ in range(10))  # no Content-Length: counted as it arrives
    response = client.post("/api/colorize", content=body, headers={"content-type": "multipart/form-data; boundary=b"})
    assert_error(response, 413, "limit")


def test_a_photo_over_the_pixel_limit_is_413(serve, small_gray):
    assert_error(post_photo(serve(max_pixels=1000), png(small_gray)), 413, "90×70", "limit")


def test_a_full_queue_answers_busy_and_the_admitted_request_still_finishes(serve, small_gray):
    client = serve(queue=1)
    device = server_of(client).device
    results = {}
    with device.lock:  # the device is "busy": an admitted request waits on it
        first = threading.Thread(target=lambda: results.update(first=post_photo(client, png(small_gray))))
        first.start()
        wait_until(lambda: device.active == 1)
        busy = post_photo(client, png(small_gray))
    first.join(60)
    assert_error(busy, 503, "busy")
    assert busy.headers["retry-after"]
    assert results["first"].status_code == 200
    assert device.active == 0


def test_photo_temp_files_are_gone_after_each_request(client, small_gray):
    post_photo(client, png(small_gray), reference=png(small_gray))
    post_photo(client, b"junk")
    assert list((server_of(client).folder / "photos").iterdir()) == []


# ----------------------------------------------------------------------------------------------- access
def test_a_token_is_needed_on_every_api_call_but_not_for_the_page(serve):
    client = serve(token="s3cret")
    assert_error(client.get("/api/health"), 401, "token")
    assert_error(client.post("/api/colorize"), 401, "token")
    assert_error(client.get("/api/health", headers={"X-Recolor-Token": "wrong"}), 401)
    assert client.get("/api/health", headers={"X-Recolor-Token": "s3cret"}).status_code == 200
    assert client.get("/api/health?token=s3cret").status_code == 200  # EventSource and <video> cannot send headers
    assert client.get("/").status_code == 200


def test_a_loopback_server_answers_only_to_loopback_names(serve):
    assert_error(serve(base_url="http://rebound.example:8000").get("/api/health"), 403, "127.0.0.1")
    assert serve(base_url="http://localhost:8000").get("/api/health").status_code == 200
    assert serve(host="0.0.0.0", token="t", base_url="http://192.0.2.1:8000").get(
        "/api/health?token=t").status_code == 200


def test_a_shared_server_gets_a_token_unless_given_one():
    from recolor.serve import with_token
    assert with_token(ServeConfig()).token is None
    assert len(with_token(ServeConfig(host="0.0.0.0")).token) >= 16
    assert with_token(ServeConfig(host="0.0.0.0", token="mine")).token == "mine"


# ----------------------------------------------------------------------------------------------- films
def test_a_film_job_runs_reports_progress_and_gives_the_colour_film(client, film):
    response = post_film(client, film, render_factor=8)
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["state"] in ("queued", "running") and job["name"] == "reel.mp4"
    events = finish(client, job["id"])
    assert events[-1]["state"] == "done" and events[-1]["done"] == 12
    result = client.get(events[-1]["result"])
    assert result.status_code == 200 and result.headers["content-type"] == "video/mp4"
    assert "reel_color.mp4" in result.headers["content-disposition"]
    assert frame_count(result.content) == (12, (64, 48))
    folder = server_of(client).jobs.get(job["id"]).folder
    assert [p.name for p in folder.iterdir()] == ["output.mp4"]  # the upload went when the job ended
    part = client.get(events[-1]["result"], headers={"Range": "bytes=0-99"})  # <video> seeks
    assert part.status_code == 206 and len(part.content) == 100
    assert client.delete(f"/api/jobs/{job['id']}").status_code == 200
    assert not folder.exists()
    assert_error(client.get(f"/api/jobs/{job['id']}/result"), 404, "no job")


def test_a_slice_of_a_film(client, film):
    job = post_film(client, film, start="0.25", duration="0.5", render_factor=8).json()
    events = finish(client, job["id"])
    assert events[-1]["state"] == "done", events[-1]
    assert frame_count(client.get(events[-1]["result"]).content)[0] == 6


@pytest.mark.parametrize("data, fields, words", [
    (b"not a film at all", {}, ["reel.mp4"]),
    (b"", {}, ["empty"]),
    (None, {"start": "soon"}, ["start", "cannot read time"]),
    (None, {"duration": "0"}, ["duration"]),
    (None, {"render_factor": "3"}, ["render_factor"]),
])
def test_a_bad_film_is_a_one_line_400_and_leaves_nothing(client, film, data, fields, words):
    message = assert_error(post_film(client, film if data is None else data, **fields), 400, *words)
    assert str(server_of(client).folder) not in message  # the server's own paths never show
    assert list(server_of(client).jobs.root.iterdir()) == []


def test_a_running_film_can_be_cancelled_and_its_files_go(client, film):
    jobs = server_of(client).jobs
    with server_of(client).device.lock:  # the job starts, then waits for the device
        job_id = post_film(client, film, render_factor=8).json()["id"]
        wait_until(lambda: jobs.get(job_id).state == "running")
        job = jobs.get(job_id)
        assert client.delete(f"/api/jobs/{job_id}").json() == {"deleted": job_id}
    wait_until(lambda: job.state == "cancelled")
    wait_until(lambda: not job.folder.exists())


def test_the_film_queue_is_bounded(serve, film):
    client = serve(film_queue=1)
    jobs = server_of(client).jobs
    with server_of(client).device.lock:
        running = post_film(client, film, render_factor=8).json()["id"]
        wait_until(lambda: jobs.get(running).state == "running")
        waiting = jobs.get(post_film(client, film, render_factor=8).json()["id"])
        assert waiting.state == "queued"
        assert_error(post_film(client, film), 503, "busy")
        assert client.delete(f"/api/jobs/{waiting.id}").status_code == 200  # a queued job never runs
        assert waiting.state == "cancelled" and not waiting.folder.exists()
    assert finish(client, running)[-1]["state"] == "done"
    wait_until(jobs.pending.empty)  # the worker has passed the deleted job by
    assert waiting.state == "cancelled" and list(jobs.root.iterdir()) == [jobs.get(running).folder]


def test_stopping_the_server_deletes_every_temp_file(serve, film, small_gray):
    client = serve()
    job_id = post_film(client, film, render_factor=8).json()["id"]
    finish(client, job_id)
    folder = server_of(client).folder
    assert folder.exists()
    client.__exit__(None, None, None)
    assert not folder.exists()


# ----------------------------------------------------------------------------------------------- the command
def test_recolor_help_does_not_import_the_server_stack():
    code = "import sys, recolor.cli; assert not {'fastapi', 'uvicorn', 'torch'} & set(sys.modules), sys.modules.keys()"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_taken_port_is_a_one_line_error(tmp_path):
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = subprocess.run([sys.executable, "-m", "recolor", "serve", "--port", port], capture_output=True,
                                text=True, timeout=120)
    assert result.returncode == 2
    assert "cannot listen on 127.0.0.1:" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_recolor_serve_answers_and_cleans_up_when_stopped(tmp_path):
    import os
    from browser import running_server
    with running_server("--device", "cpu", env={**os.environ, "TMPDIR": str(tmp_path)}) as server:
        with urllib.request.urlopen(server.origin + "/api/health", timeout=60) as response:
            assert json.load(response)["model"] == "default"
        assert len(list(tmp_path.glob("recolor-serve-*"))) == 1
    assert server.process.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has shut down
    assert list(tmp_path.glob("recolor-serve-*")) == []  # (other libraries may leave files of their own there)
