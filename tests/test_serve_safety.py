"""`recolor serve` left running: stalled and vanishing uploads, odd input, other sites' pages, and stopping.

The connection-level tests run the app in a real uvicorn (in a thread, on a free port) and talk to it through
raw sockets, which can do what a browser or httpx will not: send half a body and stall, or hang up mid-upload.
Each waits on a state it can see (the server's count of requests in flight, a log line), never on a sleep.
"""
from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import threading

import httpx
import pytest
from test_serve import (LOCAL, assert_error, default_colorizer, film, make_film, png, post_film,  # noqa: F401
                        post_photo, serve, server_of, small_gray, wait_until)

from recolor.serve import ServeConfig, listen, uvicorn_server
from recolor.serve.app import create_app


# ----------------------------------------------------------------------------------------------- helpers
@pytest.fixture
def live(default_colorizer):
    """live(**ServeConfig fields) -> a started uvicorn serving the app: (its address, the server)."""
    stack = []

    def start(**options):
        app = create_app({"default": default_colorizer}, ServeConfig(**options))
        sock = listen("127.0.0.1", 0)
        server = uvicorn_server(app, log_config=None)  # no logging config of its own: caplog sees its lines
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        server.thread = thread  # for a test that stops it itself
        stack.append((server, thread, sock))
        wait_until(lambda: server.started)
        return f"127.0.0.1:{sock.getsockname()[1]}", server
    yield start
    for server, thread, sock in stack:
        server.should_exit = True
        thread.join(60)
        sock.close()


def in_flight(server) -> int:
    """Requests uvicorn is running the app for."""
    return len(server.server_state.tasks)


def start_upload(address: str, path: str, length: int = 100_000, sent: bytes = b"--") -> socket.socket:
    """Headers of a multipart POST of `length` bytes, then only `sent` of them: an upload that stalls."""
    sock = socket.create_connection(address.split(":"), timeout=60)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: {length}\r\n"
                 f"Content-Type: multipart/form-data; boundary=b\r\n\r\n".encode() + sent)
    return sock


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def tracebacks(records) -> list[str]:
    return [r.getMessage() for r in records if r.exc_info or "Traceback" in r.getMessage()]


# ----------------------------------------------------------------------------------------------- stalled uploads
def test_stalled_uploads_hold_no_work_slot(live, small_gray, film):
    address, server = live(queue=2, film_queue=1)
    stalled = [start_upload(address, "/api/colorize") for _ in range(3)]
    stalled += [start_upload(address, "/api/jobs") for _ in range(2)]
    wait_until(lambda: in_flight(server) == 5)  # every one is inside the app, reading its body
    with httpx.Client(base_url=f"http://{address}", timeout=60) as client:
        assert client.get("/api/health").json()["busy"]["photos"] == 0  # busy counts work, not uploads
        assert post_photo(client, png(small_gray)).status_code == 200
        job = post_film(client, film, render_factor=8)
        assert job.status_code == 202, job.text
    for sock in stalled:
        sock.close()


def test_an_upload_that_stalls_gets_408_and_its_connection_closed(live, caplog):
    address, server = live(upload_grace_s=0.2, upload_min_rate=1000)
    with start_upload(address, "/api/colorize") as sock:
        answer = read_all(sock)  # returns once the server has closed the connection
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer
    message = json.loads(body)["error"]
    assert "too slow" in message and "\n" not in message
    wait_until(lambda: in_flight(server) == 0)
    assert [r.getMessage() for r in caplog.records if "stalled" in r.getMessage()] and not tracebacks(caplog.records)


def test_a_client_that_hangs_up_mid_upload_is_one_log_line(live, caplog):
    address, server = live()
    sock = start_upload(address, "/api/colorize", sent=b"--b\r\nContent-Disposition: form-data; name=\"file\"; "
                                                       b"filename=\"x.png\"\r\n\r\n" + b"\0" * 1000)
    wait_until(lambda: in_flight(server) == 1)
    sock.close()
    wait_until(lambda: in_flight(server) == 0)
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not tracebacks(caplog.records), lines
    assert len(lines) == 1 and "went away" in lines[0] and "POST /api/colorize" in lines[0]


# ----------------------------------------------------------------------------------------------- stopping
def test_stopping_with_an_open_progress_stream_is_prompt_and_quiet(live, film, caplog):
    address, server = live()
    device, jobs = server.config.app.state.server.device, server.config.app.state.server.jobs
    with device.lock:  # the film job starts, then waits for the device: its progress stream stays open
        with httpx.Client(base_url=f"http://{address}", timeout=60) as client:
            job_id = post_film(client, film, render_factor=8).json()["id"]
        wait_until(lambda: jobs.get(job_id).state == "running")
        with socket.create_connection(address.split(":"), timeout=60) as sock:
            sock.sendall(f"GET /api/jobs/{job_id}/events HTTP/1.1\r\nHost: {address}\r\n\r\n".encode())
            first = b""
            while b"data: " not in first:  # the headers, then the first event
                first += sock.recv(65536)
            assert b"data: " in first and b'"running"' in first
            server.should_exit = True
            stream = first + read_all(sock)
    # The stream ended itself (the last chunk of a chunked body), before uvicorn's grace period ran out and it
    # cancelled the stream with an error in the log.
    assert stream.endswith(b"0\r\n\r\n"), stream[-200:]
    server.thread.join(60)
    assert not server.thread.is_alive()
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


# ----------------------------------------------------------------------------------------------- other sites
def test_other_sites_pages_are_refused_but_the_page_and_scripts_are_not(client_of_local, small_gray):
    client = client_of_local
    evil = {"Origin": "http://evil.example"}
    assert_error(post_photo_with(client, png(small_gray), evil), 403, "other sites", "--allow-origin")
    assert_error(client.get("/api/health", headers=evil), 403)
    assert_error(client.get("/api/health", headers={"Origin": "null"}), 403)  # sandboxed frames, file:// pages
    assert_error(client.get("/api/health", headers={"Origin": "http://localhost:8000"}), 403)  # another origin
    assert post_photo_with(client, png(small_gray), {"Origin": LOCAL}).status_code == 200  # the page itself
    assert post_photo(client, png(small_gray)).status_code == 200  # curl, scripts: no Origin


def test_an_allowed_origin_may_use_the_api(serve, small_gray):
    site = "http://localhost:3000"
    client = serve(allow_origins=("HTTP://localhost:3000/",), token="t")
    response = post_photo_with(client, png(small_gray), {"Origin": site, "X-Recolor-Token": "t"})
    assert response.status_code == 200 and response.headers["access-control-allow-origin"] == site
    preflight = client.options("/api/jobs", headers={"Origin": site, "Access-Control-Request-Method": "POST",
                                                     "Access-Control-Request-Headers": "x-recolor-token"})
    assert preflight.status_code == 200 and "POST" in preflight.headers["access-control-allow-methods"]
    assert_error(client.get("/api/health", headers={"Origin": "http://localhost:3001", "X-Recolor-Token": "t"}),
                 403)
    assert_error(client.get("/api/health", headers={"Origin": site}), 401, "token")  # the token still counts


def test_a_foreign_host_name_is_refused(serve):
    assert_error(serve(base_url="http://rebound.example:8000").get("/api/health"), 403, "127.0.0.1")
    assert_error(serve(base_url="http://rebound.example:8000").get("/"), 403)


@pytest.mark.parametrize("origin", ["localhost:3000", "http://localhost:3000/app", "ftp://x", "*"])
def test_an_allowed_origin_must_be_an_origin(origin):
    with pytest.raises(ValueError, match="scheme://host"):
        ServeConfig(allow_origins=(origin,))


def test_recolor_serve_refuses_a_bad_allow_origin_in_one_line():
    result = subprocess.run([sys.executable, "-m", "recolor", "serve", "--port", "0", "--allow-origin", "nowhere"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "--allow-origin 'nowhere'" in result.stderr


@pytest.fixture
def client_of_local(serve):
    return serve()


def post_photo_with(client, data: bytes, headers: dict):
    return client.post("/api/colorize", files={"file": ("old.png", data, "image/png")}, headers=headers)


# ----------------------------------------------------------------------------------------------- odd input
@pytest.mark.parametrize("hints, status, words", [
    ('{"points": [{"x": ' + "9" * 5000 + ', "y": 1, "color": "red"}]}', 400, ["number too long"]),
    ('{"points": [{"x": ' + "9" * 4000 + ', "y": 1, "color": "red"}]}', 400, ["number too long"]),  # > a float
    ('{"points": ' + "[" * 2000 + "]" * 2000 + "}", 400, ["nested too deep"]),
    ("[" * 100_001, 413, ["limit of 100,000"]),
])
def test_any_hints_text_gets_a_one_line_4xx(client_of_local, small_gray, hints, status, words):
    assert_error(post_photo(client_of_local, png(small_gray), hints=hints), status, "hints", *words)


@pytest.mark.parametrize("text", ['{"points": [{"x": ' + "9" * 5000 + ', "y": 1, "color": "red"}]}',
                                  '{"points": [{"x": ' + "9" * 4000 + ', "y": 1, "color": "red"}]}',
                                  '{"points": ' + "[" * 2000 + "]" * 2000 + "}"])
def test_the_same_hints_in_a_file_are_a_one_line_error(tmp_path, text):
    from recolor.hints import HintError, read_hints_file
    path = tmp_path / "hints.json"
    path.write_text(text)
    with pytest.raises(HintError) as e:
        read_hints_file(path)
    assert str(e.value).startswith(str(path)) and "\n" not in str(e.value)


@pytest.mark.parametrize("fields", [{"start": "inf"}, {"start": "1e400"}, {"start": "nan"}, {"duration": "nan"},
                                    {"duration": "inf"}, {"start": "1e308:0:0"}])
def test_film_times_must_be_finite(client_of_local, film, fields):
    name = next(iter(fields))
    assert_error(post_film(client_of_local, film, **fields), 400, name, "cannot read time")
    assert list(server_of(client_of_local).jobs.root.iterdir()) == []


def test_recolor_video_refuses_a_start_of_nan_in_one_line(tmp_path):
    clip = make_film(tmp_path / "clip.mp4")
    result = subprocess.run([sys.executable, "-m", "recolor", "video", str(clip), "--start", "nan", "--duration",
                             "0.5"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "cannot read time 'nan'" in result.stderr and not (tmp_path / "clip_color.mp4").exists()


# ----------------------------------------------------------------------------------------------- memory
class Freeing:
    """A colorizer whose runner counts free_memory() calls (and frees, as the real one does)."""

    def __init__(self, real):
        self.real, self.freed = real, 0
        runner = real.runner

        class Runner:
            def __getattr__(_, name):
                return getattr(runner, name)

            def free_memory(_):
                self.freed += 1
                runner.free_memory()
        self.runner = Runner()

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_memory_is_handed_back_after_each_film_and_each_burst_of_photos(serve, default_colorizer, film,
                                                                         small_gray):
    colorizer = Freeing(default_colorizer)
    client = serve({"default": colorizer})
    job_id = post_film(client, film, render_factor=8).json()["id"]
    wait_until(lambda: server_of(client).jobs.get(job_id).state == "done")
    wait_until(lambda: colorizer.freed == 1)  # ONNX Runtime's arena, after the film
    before = post_photo(client, png(small_gray)).content
    wait_until(lambda: colorizer.freed == 2)  # ... and after the last photo of a burst
    assert post_photo(client, png(small_gray)).content == before  # the model works as before after a release


def test_a_finished_film_leaves_no_reader_behind(client_of_local, film):
    """A film's reader (with FFmpeg's decoder threads and frames) goes as soon as its film is done, not whenever
    the collector happens by (here: never, it is switched off): nothing in the server keeps it in a cycle."""
    import gc
    from recolor.video.pipeline import Pipeline
    jobs = server_of(client_of_local).jobs
    gc.collect()
    gc.disable()
    try:
        job_id = post_film(client_of_local, film, render_factor=8).json()["id"]
        wait_until(lambda: jobs.get(job_id).state == "done")
        wait_until(lambda: Pipeline not in map(type, gc.get_objects()))
    finally:
        gc.enable()
