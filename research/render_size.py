"""The engine's render size against the alternatives, measured on a folder of colour photos.

    python -m research.render_size --data ../shared/data/val --model default --render-factor 35

Four ways to size the network's input, all through `recolor eval`'s own scoring (`evaluate.evaluate_photos`:
desaturate, colorize, CIEDE2000 ΔE against the original, Hasler–Süsstrunk colourfulness):
- recolor: area ≈ (rf·16)², aspect kept, never above the photo's own size (`color.render_size`);
- upsampled: the same, but small photos blown up to (rf·16)² too;
- square stretch: DeOldify's rf·16 square;
- three quarters: the engine's sizing, capped at 3/4 of the photo's own size instead of all of it.
The engine does the first; this script is why."""
from __future__ import annotations

import argparse
import contextlib
import math
import time
from pathlib import Path
from unittest import mock

from recolor import color
from recolor.engine import Colorizer
from recolor.evaluate import EvalConfig, eval_paths, evaluate_photos


def square(height: int, width: int, render_factor: int) -> tuple[int, int]:
    side = color.check_render_factor(render_factor) * 16 // 32 * 32
    return side, side


VARIANTS = {  # name -> what to patch in `color` for that sizing (nothing: the engine's own)
    "aspect kept, never above the photo's size (recolor)": contextlib.nullcontext,
    # no cap at the photo's own size: min(rf·16, max(own, ∞)) is rf·16 for every photo
    "aspect kept, small photos upsampled": lambda: mock.patch.object(color, "MIN_RENDER", math.inf),
    "square stretch to rf·16 (DeOldify)": lambda: mock.patch.object(color, "render_size", square),
    # the cap at 3/4 of the photo's size: does a coarser view (more context per receptive field) help?
    "aspect kept, never above 3/4 of the photo's size": lambda: mock.patch.object(
        color, "render_size", lambda h, w, rf, own=color.render_size: own(round(h * 0.75), round(w * 0.75), rf)),
}


def score(colorizer: Colorizer, paths: list[Path], rf: int) -> dict:
    t0 = time.perf_counter()
    model = evaluate_photos(colorizer, paths, rf).summary()["model"]
    return {"delta_e": model["delta_e"], "colourfulness": model["colourfulness"], "seconds": time.perf_counter() - t0}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--model", default="default")
    p.add_argument("--render-factor", type=int, default=35)
    p.add_argument("--limit", type=int, default=None)
    a = p.parse_args()
    paths = eval_paths(EvalConfig(a.data, a.model, a.render_factor, a.limit))
    colorizer = Colorizer.from_pretrained(a.model, device="cpu")
    print(f"{len(paths)} photos from {a.data}, render factor {a.render_factor}, model {a.model}")
    print("| render size | mean ΔE2000 ↓ | colourfulness ↑ | seconds |\n|---|---|---|---|")
    for name, patch in VARIANTS.items():
        with patch():
            r = score(colorizer, paths, a.render_factor)
        print(f"| {name} | {r['delta_e']:.2f} | {r['colourfulness']:.1f} | {r['seconds']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
