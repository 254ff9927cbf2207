"""A screenshot of `recolor serve`'s page, taken in a real browser: examples/results/serve_page.png.

    python examples/serve_screenshot.py [--out examples/results/serve_page.png]

Starts the real server (the shipped default model, on the CPU), opens the page in headless Chromium (every
request to anywhere but 127.0.0.1 refused), chooses three black-and-white photos made from examples/input/
(CC0), waits for their colour and saves the whole page. Needs playwright and a Chromium (see
tests/browser.py, the tests' harness: this script runs from a clone).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2

EXAMPLES = Path(__file__).resolve().parent
sys.path.insert(0, str(EXAMPLES.parent))  # the clone's root: the harness is tests/browser.py, not in the package
from tests.browser import offline_browser, offline_page, running_server  # noqa: E402

PHOTOS = ("camera.png", "chelsea.jpg", "astronaut.jpg")


def gray_copies(folder: Path) -> list[Path]:
    """The example photos as black-and-white files (the page shows what it was given as "before")."""
    paths = []
    for name in PHOTOS:
        gray = cv2.imread(str(EXAMPLES / "input" / name), cv2.IMREAD_GRAYSCALE)
        paths.append(folder / name)
        cv2.imwrite(str(paths[-1]), gray)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=EXAMPLES / "results" / "serve_page.png")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, running_server("--device", "cpu") as server:
        photos = gray_copies(Path(folder))
        with offline_browser() as browser:
            page, elsewhere = offline_page(browser, viewport={"width": 1240, "height": 900}, device_scale_factor=1)
            page.set_default_timeout(120_000)
            page.goto(server.url)
            page.wait_for_selector("body[data-ready='1']")
            page.set_input_files("#pick", [str(p) for p in photos])
            for name in PHOTOS:
                page.wait_for_selector(f".card:has(.name:text-is('{name}'))[data-state='done']")
            for i, split in enumerate((45, 55, 50)):  # the before | after line, a little different on each
                page.locator(".card .slider").nth(i).fill(str(split))
            for img in page.locator(".card img").all():
                img.evaluate("img => img.decode()")
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out), full_page=True)
            assert not elsewhere, f"the page tried to reach {elsewhere}"
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
