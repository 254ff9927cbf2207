"""`recolor eval`: how good is a model on a folder of colour photos, in the numbers the literature quotes.

Each colour photo is desaturated (its CIE L with a = b = 0, which is also the a=b=0 baseline), colorized by
the model through the same engine as `recolor image` (render factor, luminance kept), and scored against the
original with `metrics` (CIEDE2000 ΔE, PSNR, SSIM, colourfulness; definitions and references there). The
same metrics for the baseline say how much colour the model adds; ground-truth colourfulness says how
vivid real photos are. Photos are also grouped by source, the file-name prefix before the first `_`
(e.g. `utkface_0042.jpg` -> `utkface`), because a face-heavy or otherwise skewed folder flatters a model.
Gray ground-truth photos are skipped (nothing to measure), unreadable ones reported; neither stops the run.

ΔE alone rewards gray where a model is unsure, so each photo also counts as *washed out* when its colourfulness
is under WASHED_OUT (0.4) of its ground truth's: the share of such photos, overall and per source, is what a
user sees as gray skin, gray animals and sepia casts. Choose models on ΔE, colourfulness and this rate together.

With hint counts (`--hints 1 --hints 10`), each photo is also colorized with that many hints simulated from its
true colours (hints.simulated_hints, seeded by the photo's name, so every model gets the same points), which
gives the curve Zhang et al. 2017 report: ΔE2000 and PSNR against the number of hints.
"""
from __future__ import annotations

import json
import os
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from . import color, metrics
from .color import is_near_gray
from .defaults import BATCH_SIZE, PHOTO_RENDER_FACTOR
from .images import ImageError, find_images, read_image, to_rgb8

WASHED_OUT = 0.4  # a photo whose colourfulness is under this share of its truth's reads as gray or washed out


@dataclass(frozen=True)
class EvalConfig:
    data: str
    model: str = "default"
    render_factor: int = PHOTO_RENDER_FACTOR
    limit: int | None = None  # the first N photos (sorted by path)
    device: str = "auto"
    batch_size: int = BATCH_SIZE
    hints: tuple[int, ...] = ()  # also score with this many simulated hints per photo


@dataclass
class EvalResult:
    rows: list[dict] = field(default_factory=list)  # per photo: name, source, model_*, baseline_*, truth_colourfulness
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why)
    samples: list[tuple[np.ndarray, ...]] = field(default_factory=list)  # (gray, colorized, truth) RGB uint8

    def summary(self, rows: Sequence[dict] | None = None) -> dict:
        """{'count', 'model': {...}, 'baseline': {...}, 'truth': {'colourfulness'}} as means over photos."""
        rows = self.rows if rows is None else rows
        mean = metrics.summarize([{k: v for k, v in r.items() if isinstance(v, float)} for r in rows])
        split: dict[str, dict] = {"model": {}, "baseline": {}, "truth": {}}  # and "hints<N>" with hint counts
        for key, value in mean.items():
            group, _, name = key.partition("_")
            split.setdefault(group, {})[name] = value
        return {"count": len(rows), **split}

    def locality(self) -> dict:
        """Medians over photos of one wrong hint's far-field change and share of the way (hints.locality)."""
        rows = [r for r in self.rows if "locality_far" in r]
        return {k: float(np.median([r[f"locality_{k}"] for r in rows])) for k in ("far", "spot")} if rows else {}

    def per_source(self) -> dict[str, dict]:
        groups: dict[str, list[dict]] = defaultdict(list)
        for r in self.rows:
            groups[r["source"]].append(r)
        return {source: self.summary(rows) for source, rows in sorted(groups.items())}

    def to_json(self, config: EvalConfig) -> dict:
        return {"data": config.data, "model": config.model, "render_factor": config.render_factor,
                "psnr_cap_db": metrics.PSNR_CAP, "hints": list(config.hints), **self.summary(),
                "locality_median": self.locality(), "per_source": self.per_source(),
                "skipped": [{"file": f, "why": w} for f, w in self.skipped],
                "images": [{k: min(v, metrics.PSNR_CAP) if "psnr" in k else v for k, v in r.items()} for r in self.rows]}


def source_of(path: str | Path) -> str:
    """A photo's source: its file-name prefix before the first `_` (`utkface_0042.jpg` -> `utkface`)."""
    stem = Path(path).stem
    return stem.split("_", 1)[0] if "_" in stem else "(none)"


def desaturate(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 -> the a=b=0 image: its own CIE L, no chroma (a neutral gray RGB uint8)."""
    l = color.luminance(rgb)
    return color.merge_l_ab(l, np.zeros(l.shape + (2,), np.float32))


def score_photo(name: str, source: str, truth: np.ndarray, gray: np.ndarray, pred: np.ndarray,
                baseline: bool = True) -> dict:
    row: dict = {"name": name, "source": source}
    truth_colourfulness = metrics.colourfulness(truth)
    for prefix, image in [("model", pred)] + ([("baseline", gray)] if baseline else []):
        row.update({f"{prefix}_{k}": v for k, v in metrics.image_metrics(truth, image).items()})
        row[f"{prefix}_washed_out"] = float(row[f"{prefix}_colourfulness"] < WASHED_OUT * truth_colourfulness)
    row["truth_colourfulness"] = truth_colourfulness
    return row


def load_truth(path: Path) -> np.ndarray:
    """A photo as RGB uint8 (alpha dropped, 16-bit reduced); ImageError if unreadable or gray."""
    rgb = to_rgb8(read_image(path))
    if min(rgb.shape[:2]) < 11:
        raise ImageError(f"{path}: smaller than 11×11 pixels (too small for SSIM)")
    if is_near_gray(rgb.astype(np.float32) / 255.0):
        raise ImageError(f"{path}: gray ground truth (nothing to measure)")
    return rgb


def evaluate_photos(colorizer, paths: Iterable[Path], render_factor: int = PHOTO_RENDER_FACTOR,
                    batch_size: int = BATCH_SIZE, on_photo: Callable[[Path], None] | None = None, samples: int = 0,
                    baseline: bool = True, hint_counts: Sequence[int] = ()) -> EvalResult:
    """Score a Colorizer (anything with `colorize_batch`) on colour photo files; keep the images of the
    first `samples` photos in `result.samples`. baseline=False skips scoring the gray images (the same
    numbers every time a training run validates). hint_counts: also score with that many simulated hints."""
    result = EvalResult()
    batch: list[tuple[Path, np.ndarray, np.ndarray]] = []

    def flush() -> None:
        preds = colorizer.colorize_batch([g for _, _, g in batch], render_factor, batch_size)
        rows = [score_photo(path.name, source_of(path), truth, gray, pred[:, :, :3], baseline)
                for (path, truth, gray), pred in zip(batch, preds)]
        if hint_counts:
            score_with_hints(colorizer, batch, rows, hint_counts, render_factor, batch_size, preds)
        result.rows += rows
        for (path, truth, gray), pred in zip(batch, preds):
            if len(result.samples) < samples:
                result.samples.append((gray, pred[:, :, :3], truth))
            if on_photo:
                on_photo(path)
        batch.clear()

    for path in paths:
        try:
            truth = load_truth(path)
        except ImageError as e:
            result.skipped.append((str(path), str(e).removeprefix(f"{path}: ")))
            if on_photo:
                on_photo(path)
            continue
        batch.append((path, truth, desaturate(truth)))
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    return result


def score_with_hints(colorizer, batch: list[tuple[Path, np.ndarray, np.ndarray]], rows: list[dict],
                     counts: Sequence[int], render_factor: int, batch_size: int, automatic: list) -> None:
    """Colorize the batch's gray photos again with each count of simulated hints; add `hints<N>_delta_e` and
    `hints<N>_psnr` to their rows, and `locality_far` and `locality_spot` (hints.locality) of one wrong hint
    at the centre, against the `automatic` results."""
    from .hints import locality, wrong_hint
    grays = [gray for _, _, gray in batch]
    truth_ab = [color.ab_of(truth.astype(np.float32) / 255.0) for _, truth, _ in batch]  # once, for every count
    for count in counts:
        hints = [hinted(path.name, ab, count) for (path, _, _), ab in zip(batch, truth_ab)]
        preds = colorizer.colorize_batch(grays, render_factor, batch_size, hints)
        for row, pred, (_, truth, _) in zip(rows, preds, batch):
            row[f"hints{count}_delta_e"] = metrics.delta_e2000(truth, pred[:, :, :3])
            row[f"hints{count}_psnr"] = metrics.psnr(truth, pred[:, :, :3])
    wrong = [wrong_hint(ab) for ab in truth_ab]
    preds = colorizer.colorize_batch(grays, render_factor, batch_size, [[hint] for hint in wrong])
    for row, auto, pred, hint in zip(rows, automatic, preds, wrong):
        row["locality_far"], row["locality_spot"] = locality(auto[:, :, :3], pred[:, :, :3], hint)


def hinted(name: str, truth_ab: np.ndarray, count: int) -> list:
    """`count` hints simulated from a photo's true a/b, seeded by its name (the same for every model)."""
    from .hints import simulated_hints
    rng = np.random.default_rng([zlib.crc32(name.encode()), count])
    return simulated_hints(truth_ab, count, rng)


def evaluate(config: EvalConfig, on_photo: Callable[[Path], None] | None = None) -> EvalResult:
    """Load the model named in `config` and score it on the photos under `config.data`."""
    from .engine import Colorizer
    paths = eval_paths(config)
    colorizer = Colorizer.from_pretrained(config.model, config.device)
    return evaluate_photos(colorizer, paths, config.render_factor, config.batch_size, on_photo,
                           hint_counts=[n for n in config.hints if n > 0])


def eval_paths(config: EvalConfig) -> list[Path]:
    root = Path(config.data)
    if not root.is_dir():
        raise ValueError(f"--data {config.data}: not a folder")
    paths = find_images(root)[: config.limit] if config.limit else find_images(root)
    if not paths:
        raise ValueError(f"--data {config.data}: no images found")
    return paths


def check_json_path(path: Path) -> None:
    """Refuse a --json path that cannot be written before scoring, not after: ValueError naming it."""
    if path.is_dir():
        raise ValueError(f"--json {path}: is a folder, not a file name")
    folder = path.parent
    while not folder.exists():  # write_json creates the missing folders below the first existing one
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"--json {path}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"--json {path}: no permission to write in {folder}")


def write_json(result: EvalResult, config: EvalConfig, path: Path) -> None:
    """Write the results atomically; any failure (disk full, permissions) is a ValueError naming the path."""
    from .images import write_atomic
    try:
        write_atomic(path, json.dumps(result.to_json(config), indent=1).encode(), overwrite=True)
    except OSError as e:
        raise ValueError(f"--json {path}: cannot write it ({e.strerror or e})") from None

