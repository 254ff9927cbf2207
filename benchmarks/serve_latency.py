"""`recolor serve` under a person and under load: the real server as a subprocess, the page in headless Chromium.

    python -m benchmarks.serve_latency [--runs 5] [--clients 10]

1. page load -> first colour result for a 1 MP photo, measured in the browser (performance.now() from the
   navigation's start to the card showing its result; the model is loaded when the server prints its address);
2. 20 photos chosen at once in the page: how long until all are back, and how many failed;
3. N concurrent API clients (threads, 3 requests each, a 1 MP photo): answers, clean "busy" refusals, anything
   else (there should be none), and the server's memory (VmRSS): idle once warm, at its peak, and afterwards.

Writes benchmarks/results/serve.json and prints a Markdown table. Needs playwright and a Chromium (see
tests/browser.py). Photos: ../shared/data/bw when it is there, else examples/input/camera.png.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
from playwright.sync_api import expect

from tests.browser import offline_browser, offline_page, running_server  # run from the clone's root

from .common import RESULTS, SHARED_DATA, machine

ROOT = Path(__file__).resolve().parents[1]


def gray_photos(n: int, pixels: int) -> list[np.ndarray]:
    """n real black-and-white photos, each resized to about `pixels` pixels with its aspect ratio kept."""
    paths = sorted((SHARED_DATA / "bw").glob("*.jpg")) or [ROOT / "examples" / "input" / "camera.png"]
    photos = []
    for i in range(n):
        gray = cv2.imread(str(paths[i % len(paths)]), cv2.IMREAD_GRAYSCALE)
        scale = (pixels / gray.size) ** 0.5
        photos.append(cv2.resize(gray, (round(gray.shape[1] * scale), round(gray.shape[0] * scale)),
                                 interpolation=cv2.INTER_AREA))
    return photos


def write_photos(folder: Path, photos: list[np.ndarray], stem: str) -> list[Path]:
    paths = [folder / f"{stem}_{i:02d}.jpg" for i in range(len(photos))]
    for path, photo in zip(paths, photos):
        cv2.imwrite(str(path), photo, [cv2.IMWRITE_JPEG_QUALITY, 92])
    return paths


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field)) / 1024


# ----------------------------------------------------------------------------------------------- in the page
def first_result(browser, url: str, photo: Path) -> dict:
    """One fresh page: navigation start -> page ready -> one photo chosen -> its colour result shown."""
    page, elsewhere = offline_page(browser, viewport={"width": 1200, "height": 900})
    page.set_default_timeout(120_000)
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']")
    ready_ms = page.evaluate("performance.now()")
    page.set_input_files("#pick", str(photo))
    page.wait_for_selector(".card[data-state='done']")
    page.locator(".card .after").evaluate("img => img.decode()")  # decoded, ready to paint
    done_ms = page.evaluate("performance.now()")
    page.context.close()
    assert not elsewhere, elsewhere
    return {"ready_s": ready_ms / 1000, "first_result_s": done_ms / 1000}


def many_at_once(browser, url: str, paths: list[Path]) -> dict:
    page, elsewhere = offline_page(browser, viewport={"width": 1200, "height": 900})
    page.set_default_timeout(600_000)
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']")
    t0 = time.perf_counter()
    page.set_input_files("#pick", [str(p) for p in paths])
    settled = page.locator(".card[data-state='done'], .card[data-state='failed']")
    expect(settled).to_have_count(len(paths), timeout=600_000)
    seconds = time.perf_counter() - t0
    done = page.locator(".card[data-state='done']").count()
    page.context.close()
    assert not elsewhere, elsewhere
    return {"photos": len(paths), "done": done, "failed": len(paths) - done, "seconds": seconds}


# ----------------------------------------------------------------------------------------------- API load
def post_photo(origin: str, data: bytes) -> tuple[int, float]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"p.jpg\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(f"{origin}/api/colorize", body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            response.read()
            return response.status, time.perf_counter() - t0
    except urllib.error.HTTPError as e:
        json.loads(e.read())  # every refusal is JSON
        return e.code, time.perf_counter() - t0


def concurrent_clients(origin: str, pid: int, data: bytes, clients: int, rounds: int = 3) -> dict:
    post_photo(origin, data)
    first = rss_mb(pid)
    for _ in range(5):  # the engine's own buffers grow after its first photo (~80 MB, without a server too), then stay
        post_photo(origin, data)
    idle = rss_mb(pid)
    results: list[tuple[int, float]] = []
    lock = threading.Lock()

    def client() -> None:
        for _ in range(rounds):
            answer = post_photo(origin, data)
            with lock:
                results.append(answer)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - t0
    ok = [s for code, s in results if code == 200]
    return {"clients": clients, "requests": len(results), "ok": len(ok),
            "busy": sum(code in (429, 503) for code, _ in results),
            "other": sorted({code for code, _ in results} - {200, 429, 503}),
            "ok_median_s": statistics.median(ok) if ok else None, "seconds": seconds,
            "rss_first_mb": first, "rss_idle_mb": idle, "rss_peak_mb": rss_mb(pid, "VmHWM"),
            "rss_after_mb": rss_mb(pid)}


# ----------------------------------------------------------------------------------------------- report
def markdown(r: dict) -> str:
    first, many, load = r["first_result"], r["many"], r["clients"]
    return "\n".join([
        f"`python -m benchmarks.serve_latency` ({r['when']}, {r['cpu']}, load average "
        f"{r['load_average_before']:.1f} before the run):", "",
        "| measure | result | target |", "|---|---|---|",
        f"| page load → first colour result, 1 MP photo, in Chromium (median of {len(first['runs'])}) | "
        f"{first['median_s']:.2f} s (page ready {first['ready_median_s']:.2f} s) | ≤ 2 s |",
        f"| {many['photos']} photos chosen at once in the page | {many['done']} back, {many['failed']} failed, "
        f"{many['seconds']:.1f} s | all back |",
        f"| {load['clients']} concurrent API clients × 3 requests (1 MP) | {load['ok']} answered "
        f"(median {load['ok_median_s']:.2f} s), {load['busy']} busy (503), other: {load['other'] or 'none'} | "
        f"answers or busy, no 500 |",
        f"| server memory (VmRSS): after one photo, idle after six, peak, after the load | "
        f"{load['rss_first_mb']:.0f}, {load['rss_idle_mb']:.0f}, {load['rss_peak_mb']:.0f}, "
        f"{load['rss_after_mb']:.0f} MB | back to idle |"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--clients", type=int, default=10)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]  # these machines are shared: a busy one shows in every number
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        one_mp = write_photos(folder, gray_photos(1, 1_000_000), "one_mp")[0]
        twenty = write_photos(folder, gray_photos(20, 640 * 480), "vga")
        with running_server("--device", "cpu") as server:
            with offline_browser() as browser:
                runs = [first_result(browser, server.url, one_mp) for _ in range(args.runs)]
                many = many_at_once(browser, server.url, twenty)
            load = concurrent_clients(server.origin, server.process.pid, one_mp.read_bytes(), args.clients)
    result = {"when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "cpu": machine(), "load_average_before": load_before,
              "first_result": {"runs": runs, "median_s": statistics.median(r["first_result_s"] for r in runs),
                               "ready_median_s": statistics.median(r["ready_s"] for r in runs)},
              "many": many, "clients": load}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "serve.json").write_text(json.dumps(result, indent=2))
    print(markdown(result))


if __name__ == "__main__":
    main()
