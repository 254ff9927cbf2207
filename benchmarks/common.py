"""Shared by the benchmark scripts: where results go, what machine this is, and the photos to run on."""
from __future__ import annotations

import os
import platform
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"  # ../shared/data beside the repo


def cpu_flags() -> str:
    try:
        flags = next(l for l in open("/proc/cpuinfo") if l.startswith("flags")).split()
    except (OSError, StopIteration):
        return ""
    return ",".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags)


def machine() -> str:
    """One line: CPU model, cores, SIMD flags that matter for bf16, torch version."""
    import torch
    model = platform.processor() or platform.machine()
    try:
        model = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return f"{model}, {os.cpu_count()} cores ({cpu_flags()}), {gpu}, torch {torch.__version__}"


def val_photos(n: int) -> list[np.ndarray]:
    """n real colour photos (RGB uint8) from ../shared/data/val, spread over its sources; or scikit-image's
    CC0 samples when the shared data is not there."""
    from recolor.images import find_images, read_image
    folder = SHARED_DATA / "val"
    if folder.is_dir():
        paths = find_images(folder)
        step = max(1, len(paths) // max(1, n))
        return [read_image(p)[:, :, :3] for p in paths[::step][:n]]
    from skimage import data
    samples = [data.coffee(), data.astronaut(), data.chelsea(), data.rocket()]
    return [samples[i % len(samples)] for i in range(n)]


def big_photo(height: int, width: int) -> np.ndarray:
    """A real photo resized to (height, width), RGB uint8: content-like pixels at benchmark sizes."""
    import cv2
    src = max(val_photos(8), key=lambda im: im.shape[0] * im.shape[1])
    return cv2.resize(src, (width, height), interpolation=cv2.INTER_CUBIC)
