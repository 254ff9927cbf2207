"""Issue 31's "done means" for `recolor serve`, checked by hand against the real server (a subprocess).

    python -m research.serve_checks stalled            # 12 stalled uploads, then a normal photo: 200 within 30 s?
    python -m research.serve_checks concurrent         # 10 clients x 3 photos: no 500, "busy" only during work?
    python -m research.serve_checks memory [--films 30] [--clip PATH]   # RSS after N films vs idle (+150 MB?)
    python -m research.serve_checks stop --clip PATH   # SIGTERM with a progress stream open: prompt, quiet?

Not a test: it takes minutes and its numbers depend on the machine. The memory check colorizes short
desaturated clips: the first 2 s of --clip made gray (a real clip), else a synthetic pan made with PyAV.

Measured 2026-12-06 on 2 shared cores (a training run and other jobs beside it), default settings, CPU:
- stalled: 12 stalled photo uploads and 5 stalled film uploads; a 1 MP photo still came back 200 in 7.4 s,
  and each stalled upload was answered 408 and closed after 10.1 s. Before: 503 "busy" for as long as they
  stalled.
- concurrent: 10 clients x 3 photos (1 MP): 24 answered 200, 6 "busy" (503), nothing else; every 503 came
  while photos were being colorized (health: photos > 0), and none were left in afterwards.
- memory (cup_opencv_doc.mp4 made gray, 48 frames at 640x480, render factor 21): idle 172 MB; after each of
  30 films 213-261 MB, 256 MB after the 30th (idle + 84). Before (the code as issue 31 found it): idle
  278 MB, then 568, 648, 670, 763, 809, 860, 917 MB after films 1-7 (ONNX Runtime's arena kept ~200 MB,
  and each film's reader, in a reference cycle, kept its FFmpeg decoder threads and frames).
- stop (SIGTERM with a film running and its progress stream open): the stream ended complete in 0.08 s, the
  server exited in 7.0 s (the film stops at its next batch), nothing on stderr. Before: the stream was cut
  off after uvicorn's 3 s grace period, with an error in the log.
"""
from __future__ import annotations

import argparse
import http.client
import io
import json
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlparse

import av
import cv2
import numpy as np

from tests.browser import running_server  # run from the clone's root


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts += [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"; filename="{name}"\r\n'
              f'Content-Type: application/octet-stream\r\n\r\n'.encode() + data + b"\r\n"
              for k, (name, data) in files.items()]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def post(origin: str, path: str, files: dict, fields: dict | None = None, timeout: float = 600) -> tuple[int, bytes]:
    body, kind = multipart(fields or {}, files)
    request = urllib.request.Request(origin + path, body, {"Content-Type": kind}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def get_json(origin: str, path: str) -> dict:
    with urllib.request.urlopen(origin + path, timeout=60) as response:
        return json.load(response)


def photo_bytes(pixels: int = 1_000_000) -> bytes:
    rng = np.random.default_rng(0)
    side = int(pixels ** 0.5)
    gray = cv2.GaussianBlur((rng.random((side, side)) * 255).astype(np.uint8), (0, 0), 4)
    return cv2.imencode(".png", gray)[1].tobytes()


def stall(origin: str, path: str) -> socket.socket:
    """Headers and two bytes of a 10 MB upload, then nothing."""
    netloc = urlparse(origin).netloc
    sock = socket.create_connection(netloc.rsplit(":", 1), timeout=120)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {netloc}\r\nContent-Length: 10000000\r\n"
                 f"Content-Type: multipart/form-data; boundary=b\r\n\r\n--".encode())
    return sock


def stalled(origin: str, _pid: int, args) -> dict:
    socks = [stall(origin, "/api/colorize") for _ in range(12)] + [stall(origin, "/api/jobs") for _ in range(5)]
    time.sleep(1)  # let the server take them all in
    began = time.monotonic()
    status, _ = post(origin, "/api/colorize", {"file": ("photo.png", photo_bytes())}, timeout=30)
    took = time.monotonic() - began
    answers = []
    for sock in socks:  # each stalled upload is answered 408 after the grace period, and closed
        sock.settimeout(60)
        answers.append(sock.recv(200).split(b"\r\n")[0].decode(errors="replace"))
        sock.close()
    return {"stalled": len(socks), "photo_status": status, "photo_s": round(took, 2),
            "stalled_answers": sorted(set(answers)), "stalled_answered_after_s": round(time.monotonic() - began, 1)}


def concurrent(origin: str, _pid: int, args) -> dict:
    data = photo_bytes()
    statuses: list[tuple[int, int]] = []  # (status, photos being colorized just before the answer)
    lock = threading.Lock()

    def client() -> None:
        for _ in range(3):
            status, _ = post(origin, "/api/colorize", {"file": ("photo.png", data)})
            busy_now = get_json(origin, "/api/health")["busy"]["photos"] if status == 503 else -1
            with lock:
                statuses.append((status, busy_now))

    threads = [threading.Thread(target=client) for _ in range(args.clients)]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = [s for s, _ in statuses]
    return {"requests": len(codes), "ok": codes.count(200), "busy": codes.count(503),
            "other": sorted(c for c in codes if c not in (200, 503)),
            "busy_while_work_ran": sum(1 for s, b in statuses if s == 503 and b > 0),
            "seconds": round(time.monotonic() - began, 1),
            "busy_after": get_json(origin, "/api/health")["busy"]["photos"]}


def gray_clip(source: str | None, seconds: float = 2.0, frames: int = 48) -> bytes:
    """A short desaturated clip: the first `seconds` of `source` in gray, or a synthetic gray pan."""
    out_buffer = io.BytesIO()
    with av.open(out_buffer, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=24)
        if source:
            with av.open(source) as film:
                inp = film.streams.video[0]
                stream.width, stream.height, stream.pix_fmt = inp.width, inp.height, "yuv420p"
                for frame in film.decode(video=0):
                    if frame.time is not None and frame.time >= seconds:
                        break
                    gray = frame.to_ndarray(format="gray")
                    out.mux(stream.encode(av.VideoFrame.from_ndarray(np.dstack([gray] * 3), format="rgb24")))
        else:
            rng = np.random.default_rng(0)
            texture = cv2.GaussianBlur((rng.random((480, 640 + 4 * frames)) * 255).astype(np.uint8), (0, 0), 5)
            stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
            for i in range(frames):
                gray = np.ascontiguousarray(texture[:, 4 * i:4 * i + 640])
                out.mux(stream.encode(av.VideoFrame.from_ndarray(np.dstack([gray] * 3), format="rgb24")))
        out.mux(stream.encode(None))
    return out_buffer.getvalue()


def memory(origin: str, pid: int, args) -> dict:
    clip = gray_clip(args.clip)
    status, _ = post(origin, "/api/colorize", {"file": ("photo.png", photo_bytes(250_000))})  # warm, as a user would
    time.sleep(2)
    idle = rss_mb(pid)
    after = []
    for i in range(args.films):
        status, body = post(origin, "/api/jobs", {"file": ("clip.mp4", clip)}, {"render_factor": "21"})
        assert status == 202, body
        job = json.loads(body)["id"]
        while (state := get_json(origin, f"/api/jobs/{job}")["state"]) in ("queued", "running"):
            time.sleep(0.5)
        assert state == "done", state
        time.sleep(5)  # the worker hands memory back after the job (under load this takes a moment)
        after.append(round(rss_mb(pid)))
        print(f"film {i + 1}: RSS {after[-1]} MB (idle {idle:.0f})", flush=True)
    return {"films": args.films, "clip_kb": len(clip) // 1000, "idle_mb": round(idle), "after_mb": after,
            "over_idle_mb": after[-1] - round(idle), "max_over_idle_mb": max(after) - round(idle)}


def stop(origin: str, _pid: int, args, server=None) -> dict:
    """A film running, its progress stream open, then SIGTERM: when the stream ends, when the server exits."""
    status, body = post(origin, "/api/jobs", {"file": ("clip.mp4", gray_clip(args.clip, 8.0))})
    job = json.loads(body)["id"]
    stream = urllib.request.urlopen(origin + f"/api/jobs/{job}/events", timeout=120)
    stream.readline()
    began = time.monotonic()
    server.process.terminate()
    try:
        stream.read()
        ended = "complete"
    except http.client.IncompleteRead:
        ended = "cut off"
    stream_s = time.monotonic() - began
    server.process.wait(120)
    return {"stream": ended, "stream_s": round(stream_s, 2), "exit_s": round(time.monotonic() - began, 2),
            "stderr_lines": [line.rstrip() for line in server.stderr if line]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("check", choices=["stalled", "concurrent", "memory", "stop"])
    parser.add_argument("--films", type=int, default=30)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--clip", help="a real clip to desaturate for the memory check (its first 2 s)")
    args = parser.parse_args()
    with running_server("--device", "cpu") as server:
        check = globals()[args.check]
        result = (check(server.origin, server.process.pid, args, server) if check is stop else
                  check(server.origin, server.process.pid, args))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
