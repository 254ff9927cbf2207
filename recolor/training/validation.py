"""Validation during training: whole photos through the engine, scored as `recolor eval` scores them, a score
that keeps `best.safetensors` without anyone picking DeOldify's "inflection point" by eye, and the sample
sheets a run leaves in samples/."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from ..evaluate import evaluate_photos
from ..model import Generator
from .config import TrainingError


def spread(paths: list[str], count: int) -> list[str]:
    """`count` paths evenly spaced through the sorted list, so every source (file-name prefix) is in the mix."""
    if len(paths) <= count:
        return list(paths)
    return [paths[round(i)] for i in np.linspace(0, len(paths) - 1, count)]


def val_score(delta_e: float, colourfulness: float, truth_colourfulness: float) -> float:
    """Mean ΔE2000, plus 0.2 ΔE per unit of colourfulness short of 80% of the ground truth's: ΔE alone
    rewards muddy, desaturated colour (the mean is the safest guess), so the score keeps the vivid model."""
    return delta_e + 0.2 * max(0.0, 0.8 * truth_colourfulness - colourfulness)


@torch.no_grad()
def validate(model: Generator, paths: list[str], device: torch.device, render_factor: int,
             samples: int) -> tuple[dict, list[tuple[np.ndarray, ...]]]:
    """-> (mean metrics, sample images). Whole photos through the engine, exactly as `recolor eval` scores
    them: 256 px centre crops ranked checkpoints differently from the product's own measure."""
    from ..engine import Colorizer
    colorizer = Colorizer.from_model(model, device)  # it runs a copy: the model being trained is left as it is
    shown = spread(paths, samples)  # scored first, so the sheet shows every source too
    ordered = shown + sorted(set(paths) - set(shown))
    result = evaluate_photos(colorizer, [Path(p) for p in ordered], render_factor, samples=samples, baseline=False)
    if not result.rows:
        raise TrainingError("no validation photo could be scored (all unreadable or gray)")
    mean = result.summary()
    summary = {**mean["model"], "truth_colourfulness": mean["truth"]["colourfulness"]}
    summary["score"] = val_score(summary["delta_e"], summary["colourfulness"], summary["truth_colourfulness"])
    return summary, result.samples


def sample_sheet(samples: list[tuple[np.ndarray, ...]], height: int = 256) -> np.ndarray:
    """Rows of gray | colorized | ground truth, each photo scaled to `height`, on white."""
    rows = []
    for images in samples:
        width = max(1, round(images[0].shape[1] * height / images[0].shape[0]))
        scaled = [cv2.resize(im, (width, height), interpolation=cv2.INTER_AREA) for im in images]
        gap = np.full((height, 4, 3), 255, np.uint8)
        rows.append(np.hstack([scaled[0], gap, scaled[1], gap, scaled[2]]))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return np.vstack(rows)
