"""Square stretch (DeOldify) vs aspect-kept render size, measured on a folder of colour photos.

    python -m benchmarks.render_aspect --data ../shared/data/val --model default --render-factor 35

Each photo is desaturated, colorized both ways, and scored with mean CIEDE2000 ΔE against the original
and Hasler–Süsstrunk colourfulness. The engine keeps the aspect ratio; this script is why."""
from __future__ import annotations

import argparse
import time
from unittest import mock

import numpy as np
from skimage.color import deltaE_ciede2000

from recolor import color
from recolor.metrics import colourfulness
from recolor.engine import Colorizer
from recolor.images import find_images, read_image


def square(height: int, width: int, render_factor: int) -> tuple[int, int]:
    side = color.check_render_factor(render_factor) * 16 // 32 * 32
    return side, side


def score(colorizer: Colorizer, images: list[np.ndarray], rf: int) -> dict:
    de, cf, t0 = [], [], time.perf_counter()
    for rgb in images:
        out = colorizer.colorize(rgb, rf).astype(np.float32) / 255
        truth = rgb.astype(np.float32) / 255
        de.append(float(deltaE_ciede2000(color.rgb_to_lab(truth), color.rgb_to_lab(out)).mean()))
        cf.append(colourfulness(out))
    return {"delta_e": np.mean(de), "colourfulness": np.mean(cf), "seconds": time.perf_counter() - t0}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--model", default="default")
    p.add_argument("--render-factor", type=int, default=35)
    p.add_argument("--limit", type=int, default=0)
    a = p.parse_args()
    paths = find_images(__import__("pathlib").Path(a.data))[: a.limit or None]
    images = [read_image(x)[:, :, :3] for x in paths]
    colorizer = Colorizer.from_pretrained(a.model, device="cpu")
    aspect = score(colorizer, images, a.render_factor)
    with mock.patch.object(color, "render_size", square):
        stretch = score(colorizer, images, a.render_factor)
    print(f"{len(images)} photos from {a.data}, render factor {a.render_factor}, model {a.model}")
    print("| render size | mean ΔE2000 ↓ | colourfulness ↑ | seconds |\n|---|---|---|---|")
    for name, r in (("aspect kept (recolor)", aspect), ("square stretch (DeOldify)", stretch)):
        print(f"| {name} | {r['delta_e']:.2f} | {r['colourfulness']:.1f} | {r['seconds']:.0f} |")


if __name__ == "__main__":
    main()
