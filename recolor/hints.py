"""Colour hints: "this point was that colour", as the user says it and as the network sees it.

    --hint 120,340=#a03020   --hint 400,80=navy   --hints hints.json
    {"points": [{"x": 120, "y": 340, "color": "#a03020"}], "reference": "optional/path.jpg"}

x, y are the input photo's pixels from the top-left (after EXIF orientation). A colour is any CSS colour name,
hex or rgb()/hsl() (Pillow's parser); only its chroma (CIE a/b) is used, the photo keeps its luminance.
The network takes hints as three planes at render size (Zhang et al. 2017): a/AB_SCALE, b/AB_SCALE and a mask,
each hint a small patch. Training draws hints from the photo's own colours (`sample_hint_planes`).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import color
from .color import AB_SCALE
from .defaults import MAX_PIXELS

PATCH_RADIUS = 2  # a user's hint covers a 5×5 patch at render size: training patches are 1-9 px


class HintError(ValueError):
    """A hint that cannot be used; the message is one line that names the problem."""


@dataclass(frozen=True)
class Hint:
    x: float  # input-photo pixels from the left
    y: float  # ... from the top
    ab: tuple[float, float]  # CIE a/b of the hinted colour


def color_ab(text: str) -> tuple[float, float]:
    """A CSS colour (name, #hex, rgb(), hsl()) -> its CIE a/b."""
    from PIL import ImageColor
    try:
        rgb = ImageColor.getrgb(text.strip())
    except (ValueError, AttributeError):
        raise HintError(f"unknown colour {text!r} (use a CSS colour name such as navy, or hex such as #a03020)") \
            from None
    lab = color.rgb_to_lab(np.array([[rgb[:3]]], np.float32) / 255.0)[0, 0]
    return float(lab[1]), float(lab[2])


def parse_hint(text: str) -> Hint:
    """'120,340=#a03020' -> Hint."""
    where, sep, colour = text.partition("=")
    parts = where.split(",")
    if not sep or len(parts) != 2:
        raise HintError(f"bad hint {text!r}: write X,Y=COLOUR, e.g. 120,340=#a03020")
    try:
        x, y = float(parts[0]), float(parts[1])
    except ValueError:
        raise HintError(f"bad hint {text!r}: X and Y must be numbers (pixels from the top-left)") from None
    return Hint(x, y, color_ab(colour))


def parse_points(data) -> list[Hint]:
    """The JSON form's "points": [{"x": 120, "y": 340, "color": "#a03020"}, ...] -> hints."""
    if not isinstance(data, list):
        raise HintError('"points" must be a list of {"x": ..., "y": ..., "color": ...}')
    hints = []
    for i, point in enumerate(data):
        if not isinstance(point, dict) or not {"x", "y", "color"} <= point.keys():
            raise HintError(f'point {i + 1}: needs "x", "y" and "color"')
        x, y = point["x"], point["y"]
        if isinstance(x, bool) or isinstance(y, bool) or not isinstance(x, (int, float)) \
                or not isinstance(y, (int, float)) or not math.isfinite(x) or not math.isfinite(y):
            raise HintError(f'point {i + 1}: "x" and "y" must be numbers (pixels from the top-left)')
        if not isinstance(point["color"], str):
            raise HintError(f'point {i + 1}: "color" must be a string such as "#a03020" or "navy"')
        hints.append(Hint(float(x), float(y), color_ab(point["color"])))
    return hints


def as_hints(items) -> list[Hint]:
    """What the Python API takes: Hint objects, '120,340=#a03020' strings or {"x", "y", "color"} dicts."""
    out = []
    for item in items:
        if isinstance(item, Hint):
            out.append(item)
        elif isinstance(item, str):
            out.append(parse_hint(item))
        else:
            out += parse_points([item])
    return out


def parse_hints_json(data) -> tuple[list[Hint], str | None]:
    """The `--hints` JSON, already decoded -> (hints, reference path or None)."""
    if not isinstance(data, dict):
        raise HintError('hints must be a JSON object: {"points": [...], "reference": "optional.jpg"}')
    unknown = set(data) - {"points", "reference"}
    if unknown:
        raise HintError(f"unknown hints key(s): {', '.join(sorted(unknown))} (known: points, reference)")
    reference = data.get("reference")
    if reference is not None and not isinstance(reference, str):
        raise HintError('"reference" must be a path')
    return parse_points(data.get("points", [])), reference


def read_hints_file(path: str | Path) -> tuple[list[Hint], Path | None]:
    """A `--hints` file -> (hints, reference path resolved against the file's folder, or None)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise HintError(f"{path}: cannot read ({e.strerror or e})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise HintError(f"{path}: not valid JSON ({e})") from None
    except (ValueError, RecursionError):  # a number of thousands of digits; [[[[...]]]] deeper than the stack
        raise HintError(f"{path}: cannot read it (a number too long, or nested too deep)") from None
    try:
        hints, reference = parse_hints_json(data)
    except (HintError, OverflowError) as e:  # OverflowError: an integer too large for a float
        raise HintError(f"{path}: {e}") from None
    return hints, (path.parent / reference if reference else None)


@dataclass(frozen=True)
class Guide:
    """What the user said about the colours: points on one photo, and/or a reference photo (RGB array)."""
    hints: tuple[Hint, ...] = ()
    reference: np.ndarray | None = None

    def hints_for(self, count: int) -> list | None:
        """The engine's per-image hint lists for a batch of `count` images (None: no hints)."""
        return [list(self.hints)] * count if self.hints else None


def load_guide(hint_args: list[str] | None = None, hints_file: str | Path | None = None,
               reference: str | Path | None = None, max_pixels: int = MAX_PIXELS) -> Guide:
    """--hint (repeatable), --hints FILE and --reference FILE -> a Guide; a reference named in the file is used
    unless --reference is given. Raises HintError (one line) for anything unusable."""
    from .images import ImageError, read_image
    points = [parse_hint(text) for text in hint_args or []]
    if hints_file is not None:
        file_points, file_reference = read_hints_file(hints_file)
        points += file_points
        reference = reference or file_reference
    ref_rgb = None
    if reference is not None:
        try:
            ref_rgb = read_image(reference, max_pixels)
        except ImageError as e:
            raise HintError(f"reference photo: {e}") from None
    return Guide(tuple(points), ref_rgb)


def check_inside(hints: list[Hint], width: int, height: int, what: str = "photo") -> None:
    for h in hints:
        if not (0 <= h.x < width and 0 <= h.y < height):
            raise HintError(f"hint at {h.x:g},{h.y:g} is outside the {width}×{height} {what}")


# ------------------------------------------------------------------------------------------- planes
def hint_planes(hints: list[Hint], full: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Hints on a (H, W) photo -> (3, h, w) float32 planes at render size (h, w): a, b (/AB_SCALE), mask."""
    (height, width), (h, w) = full, size
    planes = np.zeros((3, h, w), np.float32)
    for hint in hints:
        cx, cy = int(hint.x * w / width), int(hint.y * h / height)
        ys = slice(max(0, cy - PATCH_RADIUS), cy + PATCH_RADIUS + 1)
        xs = slice(max(0, cx - PATCH_RADIUS), cx + PATCH_RADIUS + 1)
        planes[0, ys, xs] = hint.ab[0] / AB_SCALE
        planes[1, ys, xs] = hint.ab[1] / AB_SCALE
        planes[2, ys, xs] = 1.0
    return planes


def simulated_hints(ab_full: np.ndarray, count: int, rng: np.random.Generator, patch: int = 9) -> list[Hint]:
    """`count` hints drawn from a photo's true colours (for `recolor eval --hints`): uniform points, each the
    mean a/b of a patch around it, `patch` px wide at full resolution."""
    height, width = ab_full.shape[:2]
    hints = []
    for _ in range(count):
        x, y = int(rng.integers(width)), int(rng.integers(height))
        r = patch // 2
        region = ab_full[max(0, y - r):y + r + 1, max(0, x - r):x + r + 1].reshape(-1, 2)
        a, b = region.mean(axis=0)
        hints.append(Hint(float(x), float(y), (float(a), float(b))))
    return hints


def sample_hint_planes(ab, generator, no_hint_share: float = 0.5, p: float = 1 / 8, max_points: int = 24):
    """Training hints, Zhang et al. 2017: per photo, no hints with probability `no_hint_share` (so automatic
    colour does not suffer), else a geometric number of points (p = 1/8), each a square patch of 1-9 px at a
    uniform position carrying the patch's mean a/b of the true colours.

    ab: (B, 2, H, W) torch tensor of true a/b -> (B, 3, H, W) planes, drawn from `generator` (a seeded
    torch.Generator on the CPU, so a resumed run draws the same hints)."""
    import torch
    b, _, height, width = ab.shape
    planes = torch.zeros(b, 3, height, width)
    ab_cpu = ab.detach().float().cpu()
    for i in range(b):
        if torch.rand((), generator=generator) < no_hint_share:
            continue
        count = min(max_points, _geometric(p, generator))
        for _ in range(count):
            size = int(torch.randint(1, 10, (), generator=generator))
            y = int(torch.randint(0, height - size + 1, (), generator=generator))
            x = int(torch.randint(0, width - size + 1, (), generator=generator))
            mean = ab_cpu[i, :, y:y + size, x:x + size].mean(dim=(1, 2)) / AB_SCALE
            planes[i, :2, y:y + size, x:x + size] = mean[:, None, None]
            planes[i, 2, y:y + size, x:x + size] = 1.0
    return planes.to(ab.device)


def _geometric(p: float, generator) -> int:
    """A geometric draw (number of trials to the first success, >= 1) from a seeded torch.Generator."""
    import torch
    u = float(torch.rand((), generator=generator, dtype=torch.float64))
    return 1 + int(math.log1p(-u) / math.log1p(-p)) if u > 0 else 1
