"""Training data: any folder of colour photos -> (L, ab) crops, in an order fixed by (seed, step).

- `scan_photos` decodes every file once: unreadable files are skipped and listed, gray or near-gray photos
  (95th-percentile Lab chroma under `color.GRAY_CHROMA`, about two just-noticeable differences) are skipped,
  since they teach the network nothing but "no colour"; for training (not for a separate `--val`), so are
  warm-toned prints (sepia and the like: `is_toned`), which teach "an old-looking photo is brown". The result
  is stored in the run, so `--resume` trains on exactly the same files.
- `StepBatches` makes the data order a pure function of (seed, global step): sample number p of the run is
  file perm_e[p mod n] of epoch e = p div n. A resumed run therefore sees the same crops as an uninterrupted
  one, whatever the worker count, and under DDP each rank takes its own slice of every global batch.
- Augmentation (seeded by the sample number): random scale and crop, horizontal flip, mild luminance jitter
  (a gamma on L, chroma kept) and, on the network's input L only (the clean L is kept for the RGB losses):
  optional Gaussian noise, which teaches it to ignore film grain and steadies video, and an optional "faded
  print" (softened, lifted blacks, dulled whites), since a blurred input otherwise reads as warm
  (research/model-notebook.md, step 24).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from ..color import is_near_gray, rgb_to_lab
from ..evaluate import source_of

log = logging.getLogger("recolor")
DEFAULT_ZOOM = 3.0  # training crops see objects up to 3× bigger, as the engine renders them (random_crop)


def load_rgb(path: Path, reduced: bool = False) -> np.ndarray | None:
    """File -> RGB float32 in [0, 1], or None if it cannot be decoded. `reduced`: JPEGs decoded at 1/2 size."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError:
        return None
    flag = cv2.IMREAD_REDUCED_COLOR_2 if reduced else cv2.IMREAD_COLOR
    bgr = cv2.imdecode(data, flag) if data.size else None
    if bgr is None or bgr.size == 0:
        return None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


@dataclass
class PhotoIndex:
    """The usable photos of a folder, and what was left out and why."""
    photos: list[str] = field(default_factory=list)
    gray: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    toned: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{len(self.photos)} colour photos ({len(self.gray)} gray, {len(self.toned)} toned and "
                f"{len(self.unreadable)} unreadable skipped)")


TONED_RESIDUAL = 2.0  # Lab a/b units: how far a toned print's colour strays from the mean colour at its L
WARM_TINTS = (20.0, 110.0)  # hue of the mean a/b, degrees from +a towards +b: red-brown through sepia to yellow


def is_toned(rgb: np.ndarray) -> bool:
    """A monochrome print in a warm tint (sepia, gold, selenium brown; RGB float in [0, 1]): its a/b is a function
    of L, so the colour left after taking away the mean a/b of each band of 2.5 L units is under TONED_RESIDUAL
    (rms, at 96×96), and its mean a/b is warm. Such a photo holds no colour to learn, only "old-looking photos are
    brown". It also catches clothes laid on a matching floor. Cool-toned photos are kept: in practice they are
    skies of heavy cloud, which teach skies and water (research/model-notebook.md, step 24)."""
    lab = rgb_to_lab(cv2.resize(rgb, (96, 96), interpolation=cv2.INTER_AREA)).reshape(-1, 3)
    band, ab = np.minimum(lab[:, 0] // 2.5, 39).astype(int), lab[:, 1:].astype(np.float64)
    counts = np.bincount(band, minlength=40)[:, None]
    means = np.stack([np.bincount(band, ab[:, i], minlength=40) for i in (0, 1)], 1) / np.maximum(counts, 1)
    hue = np.degrees(np.arctan2(ab[:, 1].mean(), ab[:, 0].mean()))
    one_tint = np.sqrt(((ab - means[band]) ** 2).sum(1).mean()) < TONED_RESIDUAL
    return bool(one_tint and WARM_TINTS[0] < hue < WARM_TINTS[1])


def scan_photos(paths: list[Path], min_side: int = 32, skip_toned: bool = False) -> PhotoIndex:
    """Decode each file once (JPEGs at half size): keep colour photos, list gray, unreadable and (with
    `skip_toned`, for training) toned ones."""
    index = PhotoIndex()
    for path in paths:
        rgb = load_rgb(path, reduced=True)
        if rgb is None or min(rgb.shape[:2]) < min_side // 2:
            log.warning("skipping unreadable or tiny image: %s", path)
            index.unreadable.append(str(path))
        elif is_near_gray(rgb):
            index.gray.append(str(path))
        elif skip_toned and is_toned(rgb):
            index.toned.append(str(path))
        else:
            index.photos.append(str(path))
    return index


def draw_probabilities(paths: list[str], source_weights: dict[str, float]) -> np.ndarray | None:
    """Per-photo draw probabilities from per-source weights (a source not named weighs 1); None: uniform.

    A folder that is mostly one source (say, face crops) trains a model for that source; weighting evens
    the mix without copying files. A named source that matches no photo is a typo, so it is an error."""
    if not source_weights:
        return None
    sources = [source_of(p) for p in paths]
    unknown = sorted(set(source_weights) - set(sources))
    if unknown:
        raise ValueError(f"source weights name {', '.join(unknown)}, which match no training photo "
                         f"(sources: {', '.join(sorted(set(sources)))})")
    weights = np.array([source_weights.get(s, 1.0) for s in sources], dtype=np.float64)
    if weights.sum() <= 0:
        raise ValueError("the source weights leave no photo to train on")
    return weights / weights.sum()


def split_val(photos: list[str], fraction: float, seed: int, cap: int) -> tuple[list[str], list[str]]:
    """A fixed random hold-out: (train, val). The same seed and files always give the same split."""
    n_val = min(cap, int(round(len(photos) * fraction)))
    if n_val == 0 or len(photos) - n_val < 1:
        return list(photos), []
    order = np.random.default_rng([seed, 7919]).permutation(len(photos))
    val = sorted(photos[i] for i in order[:n_val])
    held = set(val)
    return [p for p in photos if p not in held], val


def bin_counts(paths: list[str], centres, seed: int, photos: int = 600, side: int = 64):
    """How many pixels of up to `photos` training photos (a seeded draw, each shrunk to side×side) fall in each
    a/b bin: the colour prior behind class rebalancing (ab_classes.rebalancing_weights)."""
    import torch
    from ..ab_classes import nearest_bins
    counts = torch.zeros(len(centres), dtype=torch.float64)
    rng = np.random.default_rng([seed, 313])
    for i in rng.permutation(len(paths))[:photos]:
        rgb = load_rgb(Path(paths[i]), reduced=True)
        if rgb is None:
            continue
        ab = rgb_to_lab(cv2.resize(rgb, (side, side), interpolation=cv2.INTER_AREA))[..., 1:]
        _, idx = nearest_bins(torch.from_numpy(ab.reshape(-1, 2).copy()), centres)
        counts += torch.bincount(idx[:, 0], minlength=len(centres)).double()
    return counts + 1.0  # no bin weighs infinitely


# --------------------------------------------------------------------------------------------- crops
def random_crop(rgb: np.ndarray, size: int, rng: np.random.Generator,
                zoom: float = DEFAULT_ZOOM) -> np.ndarray:
    """Scale so the shorter side is in [size, zoom·size] (log-uniform), then crop size×size.

    Small zooms keep the whole scene in view; large ones show objects as big as the engine renders them
    (rf 35 draws a 4:3 photo's shorter side at ~480 px), so the network meets that scale in training."""
    h, w = rgb.shape[:2]
    scale = size * float(np.exp(rng.uniform(0.0, np.log(max(1.0, zoom))))) / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    rgb = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    y, x = rng.integers(0, nh - size + 1), rng.integers(0, nw - size + 1)
    return rgb[y:y + size, x:x + size]


def center_fit(rgb: np.ndarray, size: int) -> np.ndarray:
    """Deterministic view for validation: shorter side to size, centre crop."""
    h, w = rgb.shape[:2]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    rgb = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    y, x = (nh - size) // 2, (nw - size) // 2
    return np.ascontiguousarray(rgb[y:y + size, x:x + size])


def to_l_ab(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RGB (S, S, 3) -> L (1, S, S), ab (2, S, S), float32 channel-first."""
    lab = rgb_to_lab(rgb)
    return np.ascontiguousarray(lab[None, :, :, 0]), np.ascontiguousarray(lab[:, :, 1:].transpose(2, 0, 1))


class ColorPhotos:
    """Map-style dataset whose keys are (file index, sample number, crop size) from `StepBatches`.

    Returns (L_in, L, ab): L_in is the network input (with noise), L the clean luminance, all float32."""

    def __init__(self, paths: list[str], seed: int = 0, augment: bool = True, noise: float = 0.0,
                 zoom: float = DEFAULT_ZOOM, fade: float = 0.0):
        if not paths:
            raise ValueError("no training photos")
        self.paths, self.seed, self.augment, self.noise, self.zoom = list(paths), seed, augment, noise, zoom
        self.fade = fade

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int) -> np.ndarray:
        """A file that became unreadable since the scan is replaced by the next one, never a crash."""
        for attempt in range(len(self.paths)):
            rgb = load_rgb(Path(self.paths[(index + attempt) % len(self.paths)]))
            if rgb is not None:
                return rgb
        raise RuntimeError("no readable image left in the training set")

    def __getitem__(self, key: tuple[int, int, int]):
        index, sample, size = key
        rng = np.random.default_rng([self.seed, sample])
        rgb = self.load(index)
        if not self.augment:
            l, ab = to_l_ab(center_fit(rgb, size))
            return l, l, ab
        rgb = random_crop(rgb, size, rng, self.zoom)
        if rng.random() < 0.5:
            rgb = rgb[:, ::-1]
        l, ab = to_l_ab(np.ascontiguousarray(rgb))
        l = (100.0 * (l / 100.0) ** rng.uniform(0.8, 1.25)).astype(np.float32)  # luminance jitter, chroma kept
        l_in = faded(l, rng) if self.fade > 0 and rng.random() < self.fade else l
        if self.noise > 0:
            sigma = rng.uniform(0.0, self.noise)
            l_in = np.clip(l_in + rng.normal(0.0, sigma, l.shape), 0, 100).astype(np.float32)
        return l_in, l, ab


def faded(l: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """L (1, S, S) as an old print shows it: blurred (σ up to 1.5 px), blacks lifted to up to 20, whites
    dulled to down to 80. The colour target stays the clean photo's."""
    soft = cv2.GaussianBlur(l[0], (0, 0), rng.uniform(0.3, 1.5))
    black, white = rng.uniform(0.0, 20.0), rng.uniform(80.0, 100.0)
    return (black + soft * ((white - black) / 100.0))[None].astype(np.float32)


class StepBatches:
    """Batch sampler: step s of a run -> this rank's keys (file index, sample number, crop size).

    Global batch = batch_size × world; sample numbers run on across steps and stages of the run, so the
    order is a pure function of (seed, step) and a resume continues it exactly. An epoch is n samples: a
    permutation of the files, or with `p` (draw probabilities) n weighted draws with replacement."""

    def __init__(self, n: int, batch_size: int, seed: int, steps: range, size_at: Callable[[int], int],
                 offset: int = 0, rank: int = 0, world: int = 1, p: np.ndarray | None = None):
        self.n, self.batch_size, self.seed, self.steps = n, batch_size, seed, steps
        self.size_at, self.offset, self.rank, self.world, self.p = size_at, offset, rank, world, p
        self._order: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.steps)

    def order(self, epoch: int) -> np.ndarray:
        if self._order is None or self._order[0] != epoch:
            rng = np.random.default_rng([self.seed, epoch])
            files = rng.permutation(self.n) if self.p is None else rng.choice(self.n, self.n, p=self.p)
            self._order = (epoch, files)
        return self._order[1]

    def keys(self, step: int) -> list[tuple[int, int, int]]:
        size = self.size_at(step)
        first = self.offset + (step * self.world + self.rank) * self.batch_size
        out = []
        for sample in range(first, first + self.batch_size):
            epoch, pos = divmod(sample, self.n)
            out.append((int(self.order(epoch)[pos]), sample, size))
        return out

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        for step in self.steps:
            yield self.keys(step)
