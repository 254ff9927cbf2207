"""Colour hints: "this point was that colour", as the user says it and as propagation.py takes it.

    --hint 120,340=#a03020   --hint 400,80=navy   --hints hints.json
    {"points": [{"x": 120, "y": 340, "color": "#a03020"}], "reference": "optional/path.jpg"}

x, y are the input photo's pixels from the top-left (after EXIF orientation). A colour is any CSS colour name,
hex or rgb()/hsl() (Pillow's parser); only its chroma (CIE a/b) is used, the photo keeps its luminance.
Hints travel as three planes at render size, as Zhang et al. 2017 fed them to their network: a/AB_SCALE,
b/AB_SCALE and a mask, each hint a small patch; propagation.py makes the network's colours agree with them.
`recolor eval --hints` simulates hints from a photo's true colours, and measures how local one wrong hint is.
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
                or not isinstance(y, (int, float)):
            raise HintError(f'point {i + 1}: "x" and "y" must be numbers (pixels from the top-left)')
        try:
            finite = math.isfinite(x) and math.isfinite(y)
        except OverflowError:  # an integer of hundreds of digits, too large for a float
            raise HintError(f"point {i + 1}: a number too long to read; x and y are pixels from the top-left") \
                from None
        if not finite:
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


def loads_hints(text: str) -> tuple[list[Hint], str | None]:
    """The `--hints` JSON as text (a file's, or the server's `hints` field) -> (hints, reference path or None);
    whatever the text holds, a problem is a one-line HintError."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise HintError(f"not valid JSON ({e.msg} at character {e.pos})") from None
    except RecursionError:  # [[[[...]]]] nested deeper than Python's stack
        raise HintError('nested too deep; write {"points": [{"x": .., "y": .., "color": ..}]}') from None
    except ValueError:  # a number of thousands of digits: over int()'s limit
        raise HintError("a number too long to read; x and y are pixels from the top-left") from None
    return parse_hints_json(data)


def read_hints_file(path: str | Path) -> tuple[list[Hint], Path | None]:
    """A `--hints` file -> (hints, reference path resolved against the file's folder, or None)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise HintError(f"{path}: cannot read ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise HintError(f"{path}: not valid JSON ({e})") from None
    try:
        hints, reference = loads_hints(text)
    except HintError as e:
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


# ------------------------------------------------------------------------------------------- measuring
WRONG_COLOURS = ("#ff0000", "#0000ff")  # saturated red, or blue where the truth is reddish: far from the truth


def wrong_hint(truth_ab: np.ndarray, patch: int = 9) -> Hint:
    """One hint at the photo's centre of a fixed saturated colour far from its true colour there (for the
    locality of `recolor eval --hints`): red, or blue where the truth is nearer red."""
    height, width = truth_ab.shape[:2]
    x, y, r = width // 2, height // 2, patch // 2
    truth = truth_ab[y - r:y + r + 1, x - r:x + r + 1].reshape(-1, 2).mean(axis=0)
    colour = max((color_ab(c) for c in WRONG_COLOURS), key=lambda ab: np.hypot(*(np.array(ab) - truth)))
    return Hint(float(x), float(y), colour)


def locality(before: np.ndarray, after: np.ndarray, hint: Hint, patch: int = 9) -> tuple[float, float]:
    """How much one hint changed where it should not, and where it should: RGB uint8 results without and with
    it -> (mean |Δab| over the pixels farther than half the short side from it, the share of the way from the
    result without it to the asked colour that the `patch`×`patch` patch at it moved). The asked colour is
    taken as far as each patch pixel's L allows (propagation.reachable): no result can go further."""
    from .propagation import reachable
    lab0, lab1 = (color.rgb_to_lab(im.astype(np.float32) / 255.0) for im in (before, after))
    height, width = before.shape[:2]
    ys, xs = np.ogrid[:height, :width]
    far = np.hypot(ys - hint.y, xs - hint.x) > 0.5 * min(height, width)
    far_change = float(np.linalg.norm(lab1[far, 1:] - lab0[far, 1:], axis=-1).mean()) if far.any() else 0.0
    r, cx, cy = patch // 2, int(hint.x), int(hint.y)
    spot = (slice(max(0, cy - r), cy + r + 1), slice(max(0, cx - r), cx + r + 1))
    target = reachable(lab0[spot][..., 0].ravel(), hint.ab)
    start, end = lab0[spot][..., 1:].reshape(-1, 2).mean(axis=0), lab1[spot][..., 1:].reshape(-1, 2).mean(axis=0)
    if np.hypot(*(target - start)) < 1.0:  # already there: nothing to move
        return far_change, 1.0
    return far_change, share_of_way(start, end, target)


def share_of_way(start: np.ndarray, end: np.ndarray, target: np.ndarray) -> float:
    """How far a colour moved from `start` to `end` along the way to `target`: 0 not at all, 1 all of it."""
    way = np.asarray(target, np.float64) - start
    return float(np.dot(end - start, way) / np.dot(way, way))
