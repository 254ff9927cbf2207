"""Driving the real page: `recolor serve` in a subprocess, and headless Chromium that may reach nothing else.

A test harness, so it lives with the tests, not in the package: tests import it as `browser`, and
benchmarks/serve_latency.py and examples/serve_screenshot.py (run from a clone) as `tests.browser`. Needs
playwright (the `dev` extra) and a Chromium on the PATH (Debian: `apt-get install chromium`); Playwright's own
browser download is never used.
"""
from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator
from urllib.parse import urlparse

# Headless, and nothing of Chromium's own phoning home (updates, sync, safe-browsing lists): the page under test
# must be the only thing that could reach the network.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
ADDRESS = re.compile(r"http://127\.0\.0\.1:\d+/\S*")
DONE_S = 60  # generous: a photo takes about a second here, but CI machines are shared


def find_chromium() -> str | None:
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


@dataclass
class ServerProcess:
    url: str  # the page's address as printed, with ?token= when there is one
    process: subprocess.Popen
    stderr: list[str] = field(default_factory=list)

    @property
    def origin(self) -> str:
        parts = urlparse(self.url)
        return f"{parts.scheme}://{parts.netloc}"


@contextmanager
def running_server(*args: str, env: dict | None = None, timeout: float = 180.0) -> Iterator[ServerProcess]:
    """`recolor serve --port 0 ARGS` in a subprocess, yielded once it has printed its address (its socket is
    bound by then, so requests wait for it rather than fail); stopped with SIGTERM afterwards."""
    process = subprocess.Popen([sys.executable, "-m", "recolor", "serve", "--port", "0", *args], env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines: queue.Queue[str | None] = queue.Queue()
    server = ServerProcess("", process)
    threading.Thread(target=_pump, args=(process.stdout, lines.put), daemon=True).start()
    threading.Thread(target=_pump, args=(process.stderr, server.stderr.append), daemon=True).start()
    try:
        server.url = _wait_for_address(lines, timeout, server)
        yield server
    finally:
        stop(process)


def _pump(stream, put) -> None:
    for line in stream:
        put(line)
    put(None)


def _wait_for_address(lines: queue.Queue, timeout: float, server: ServerProcess) -> str:
    while True:
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"recolor serve printed no address in {timeout:g} s") from None
        if line is None:
            raise RuntimeError(f"recolor serve exited: {''.join(server.stderr)[-2000:]}")
        if match := ADDRESS.search(line):
            return match.group(0)


def stop(process: subprocess.Popen) -> int:
    """SIGTERM (the server deletes its temp files), then SIGKILL if it has not ended within a minute."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@contextmanager
def offline_browser(executable: str | None = None):
    """Headless Chromium (the system's, never a downloaded one) through Playwright."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable or find_chromium(), args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def offline_page(browser, **context_options):
    """A page whose every request to anywhere but 127.0.0.1 is aborted and recorded in the returned list."""
    context = browser.new_context(accept_downloads=True, **context_options)
    elsewhere: list[str] = []

    def route(r) -> None:
        if urlparse(r.request.url).hostname == "127.0.0.1":
            r.continue_()
        else:
            elsewhere.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    return context.new_page(), elsewhere


def browser_problem() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    if find_chromium() is None:
        return "no Chromium on the PATH (Debian: apt-get install chromium)"
    return None


def require_browser() -> None:
    """Skip without Playwright or Chromium; RECOLOR_REQUIRE_BROWSER=1 (CI) makes that a failure."""
    import pytest
    problem = browser_problem()
    if problem and os.environ.get("RECOLOR_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{problem}; RECOLOR_REQUIRE_BROWSER=1 requires the browser tests to run")
    if problem:
        pytest.skip(problem)


def expect(locator):
    from playwright.sync_api import expect as playwright_expect  # imported here: the tests skip without it
    return playwright_expect(locator)


class Page:
    """A fresh page on the server, and the list of requests it tried to send elsewhere."""

    def __init__(self, browser, server, width: int = 1200, height: int = 900):
        self.page, self.elsewhere = offline_page(browser, viewport={"width": width, "height": height})
        self.page.set_default_timeout(DONE_S * 1000)
        self.page.goto(server.url)
        self.page.wait_for_selector("body[data-ready='1']")


def card(page, name: str):
    return page.locator(".card", has=page.locator(".name", has_text=name))


def wait_done(page, name: str):
    page.wait_for_selector(f".card:has(.name:text-is('{name}'))[data-state='done']")


def save_shot(target, name: str) -> None:
    """A screenshot of a page or element into $RECOLOR_SHOTS/<name>.png, when that is set (to look at)."""
    folder = os.environ.get("RECOLOR_SHOTS")
    if folder:
        os.makedirs(folder, exist_ok=True)
        target.screenshot(path=os.path.join(folder, f"{name}.png"))
