"""A number for the sepia wash: on real old photos, how much of each result one warm colour covers.

    python -m benchmarks.bw_cast --data ../shared/data/bw --models default runs/new.safetensors [-r 35 -r 22]

Per model and render factor: the mean chroma, and the warm share, the fraction of pixels whose colour is
orange-yellow-brown (hue 40-100° in CIE Lab, chroma above 20), averaged over the photos and for the worst one.
A good result on an old portrait has some warm skin; a washed one is warm nearly everywhere (more than half of
it). It does not replace looking at `bw_sheet`: it says where to look, and whether a change made it better.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from skimage.color import rgb2lab

from recolor.engine import Colorizer
from recolor.images import find_images, read_image, to_rgb8

WARM_HUES = (40.0, 100.0)  # degrees from +a towards +b: orange to yellow, where sepia and skin lie
MIN_CHROMA = 20.0  # below this a pixel reads as gray, whatever its hue


def chroma_and_warm_share(rgb: np.ndarray) -> tuple[float, float]:
    lab = rgb2lab(rgb[:, :, :3])
    chroma = np.hypot(lab[..., 1], lab[..., 2])
    hue = np.degrees(np.arctan2(lab[..., 2], lab[..., 1]))
    warm = (chroma > MIN_CHROMA) & (hue > WARM_HUES[0]) & (hue < WARM_HUES[1])
    return float(chroma.mean()), float(warm.mean())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("-r", "--render-factor", type=int, action="append")
    args = parser.parse_args()
    photos = find_images(Path(args.data))
    grays = [to_rgb8(read_image(p)) for p in photos]
    print("| model | rf | chroma | warm share | worst photo |\n|---|---|---|---|---|")
    for name in args.models:
        colorizer = Colorizer.from_pretrained(name, "cpu")
        for rf in args.render_factor or [35]:
            chroma, warm = np.array([chroma_and_warm_share(colorizer.colorize(g, rf)) for g in grays]).T
            worst = int(np.argmax(warm))
            print(f"| {name} | {rf} | {chroma.mean():.1f} | {warm.mean():.3f} | {photos[worst].name} {warm[worst]:.2f} |")


if __name__ == "__main__":
    main()
