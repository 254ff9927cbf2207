"""Square stretch (DeOldify) vs aspect-kept render size, measured on a folder of colour photos.

    python -m benchmarks.render_aspect --data ../shared/data/val --model default --render-factor 35

Both ways go through `recolor eval`'s own scoring (`evaluate.evaluate_photos`: desaturate, colorize,
CIEDE2000 ΔE against the original, Hasler–Süsstrunk colourfulness). The engine keeps the aspect ratio;
this script is why."""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from unittest import mock

from recolor import color
from recolor.engine import Colorizer
from recolor.evaluate import EvalConfig, eval_paths, evaluate_photos


def square(height: int, width: int, render_factor: int) -> tuple[int, int]:
    side = color.check_render_factor(render_factor) * 16 // 32 * 32
    return side, side


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
    aspect = score(colorizer, paths, a.render_factor)
    with mock.patch.object(color, "render_size", square):
        stretch = score(colorizer, paths, a.render_factor)
    print(f"{len(paths)} photos from {a.data}, render factor {a.render_factor}, model {a.model}")
    print("| render size | mean ΔE2000 ↓ | colourfulness ↑ | seconds |\n|---|---|---|---|")
    for name, r in (("aspect kept (recolor)", aspect), ("square stretch (DeOldify)", stretch)):
        print(f"| {name} | {r['delta_e']:.2f} | {r['colourfulness']:.1f} | {r['seconds']:.0f} |")


if __name__ == "__main__":
    main()
