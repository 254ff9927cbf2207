"""Colour maths: CIE Lab conversions, render sizes and merging predicted chroma with the original luminance.

Everything here is pure numpy/OpenCV on float32 arrays (OpenCV's float32 Lab is ~10x faster than skimage's):
L is in [0, 100], a/b roughly in [-110, 110], RGB in [0, 1], images are (H, W, C) in RGB order.
"""
from __future__ import annotations

import cv2
import numpy as np

from .defaults import RENDER_FACTOR_MAX, RENDER_FACTOR_MIN

AB_SCALE = 100.0  # networks see a/b divided by this: the generator's head predicts it, the hint planes carry it


def unit_float(pixels: np.ndarray) -> np.ndarray:
    """uint8, uint16 or float pixels -> float32 in [0, 1]."""
    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32) / 255.0
    if pixels.dtype == np.uint16:
        return pixels.astype(np.float32) / 65535.0
    if np.issubdtype(pixels.dtype, np.floating):
        return np.clip(pixels.astype(np.float32), 0.0, 1.0)
    raise ValueError(f"unsupported pixel type {pixels.dtype} (expected uint8, uint16 or float)")


def check_image(image: np.ndarray) -> None:
    if not (image.ndim == 2 or image.ndim == 3 and image.shape[2] in (1, 3, 4)):
        raise ValueError(f"unsupported image shape {image.shape} (expected H×W, H×W×3 or H×W×4)")


def to_float_rgb(image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Any gray/RGB/RGBA image (uint8, uint16 or float in [0, 1]) -> (RGB float32 in [0, 1], alpha or None)."""
    img = unit_float(image)
    check_image(img)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        return np.repeat(img[:, :, None], 3, axis=2), None
    alpha = img[:, :, 3].copy() if img.shape[2] == 4 else None
    return np.ascontiguousarray(img[:, :, :3]), alpha


def alpha_channel(image: np.ndarray) -> np.ndarray | None:
    """The alpha plane of an RGBA image as uint8 (H, W), or None."""
    if image.ndim != 3 or image.shape[2] != 4:
        return None
    return image[:, :, 3].copy() if image.dtype == np.uint8 else to_uint8(unit_float(image[:, :, 3]))


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32 sRGB in [0, 1] -> (H, W, 3) float32 Lab."""
    return cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.float32), cv2.COLOR_RGB2Lab)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32 Lab -> (H, W, 3) float32 sRGB, not clipped."""
    return cv2.cvtColor(np.ascontiguousarray(lab, dtype=np.float32), cv2.COLOR_Lab2RGB)


STRIP_ROWS = 256  # full-size images are converted in strips of rows: temporaries stay a few MB, not GBs


def strips(height: int):
    """Row slices covering 0..height, STRIP_ROWS at a time."""
    return (slice(top, min(top + STRIP_ROWS, height)) for top in range(0, height, STRIP_ROWS))


def luminance(image: np.ndarray) -> np.ndarray:
    """L channel (H, W) float32 in [0, 100] of any supported image.

    8-bit gray (the usual B&W photo; a film frame or a scan stored as RGB with R = G = B) is a table lookup:
    256 values, each converted by OpenCV, so the result is identical to the full conversion. Anything else is
    converted strip by strip."""
    check_image(image)
    if image.dtype == np.uint8 and (image.ndim == 2 or image.shape[2] == 1):
        return _gray8_to_l()[image.reshape(image.shape[:2])]
    if image.dtype == np.uint8 and _is_gray_rgb(image):
        return _gray8_to_l()[image[:, :, 0]]
    l = np.empty(image.shape[:2], np.float32)
    for rows in strips(image.shape[0]):
        rgb, _ = to_float_rgb(image[rows])
        l[rows] = rgb_to_lab(rgb)[:, :, 0]
    return l


def _is_gray_rgb(image: np.ndarray) -> bool:
    """R = G = B everywhere (alpha aside); strip by strip, so a colour photo stops at its first colour strip."""
    for rows in strips(image.shape[0]):
        r, g, b = image[rows, :, 0], image[rows, :, 1], image[rows, :, 2]
        if not (np.array_equal(r, g) and np.array_equal(g, b)):
            return False
    return True


_GRAY8_L: list[np.ndarray] = []


def _gray8_to_l() -> np.ndarray:
    """(256,) float32: L of each 8-bit gray level, computed once by the same OpenCV conversion."""
    if not _GRAY8_L:
        levels = np.repeat((np.arange(256, dtype=np.float32) / 255.0)[None, :, None], 3, axis=2)  # (1, 256, 3)
        _GRAY8_L.append(np.ascontiguousarray(rgb_to_lab(levels)[0, :, 0]))
    return _GRAY8_L[0]


MIN_RENDER = 128  # px; tiny thumbnails are upsampled to this, or the encoder's deepest map would be 1×1


def check_render_factor(render_factor: int) -> int:
    if not RENDER_FACTOR_MIN <= int(render_factor) <= RENDER_FACTOR_MAX:
        raise ValueError(
            f"render factor {render_factor} is out of range: use {RENDER_FACTOR_MIN}–{RENDER_FACTOR_MAX} "
            f"(render size = factor × 16 px)")
    return int(render_factor)


def render_size(height: int, width: int, render_factor: int) -> tuple[int, int]:
    """(h, w) the network sees: area ≈ (rf·16)², the input's aspect ratio kept, sides multiples of 32,
    but never above the photo's own resolution (at least MIN_RENDER² in area).

    DeOldify stretches every input to an rf·16 square; keeping the aspect ratio avoids squashing
    faces and horizons and measured no worse on val (see benchmarks/README.md). Upsampling a small photo
    adds no detail: it costs time and shows the network blurred objects bigger than it learned them
    (measured on val, benchmarks/README.md)."""
    own = np.sqrt(height * width)
    target = min(check_render_factor(render_factor) * 16, max(own, MIN_RENDER))
    scale = target / own
    h = max(32, int(round(height * scale / 32)) * 32)
    w = max(32, int(round(width * scale / 32)) * 32)
    return h, w


def resize_l(l_full: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an L plane to size=(h, w); INTER_AREA when shrinking avoids aliasing."""
    h, w = size
    shrink = h * w < l_full.shape[0] * l_full.shape[1]
    return cv2.resize(l_full, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def upsample_ab(ab: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w, 2) chroma -> (H, W, 2); chroma is smooth, so bilinear is enough and fast."""
    h, w = size
    if ab.shape[:2] == (h, w):
        return ab
    return cv2.resize(ab, (w, h), interpolation=cv2.INTER_LINEAR)


# sRGB (D65) constants exactly as OpenCV uses them, so the fix-up below agrees with cv2's own conversion (and
# training's differentiable conversion in losses.py, which uses these too)
D65_WHITE = np.array([0.950456, 1.0, 1.088754], np.float32)
XYZ_TO_SRGB = np.array([[3.240479, -1.53715, -0.498535],
                        [-0.969256, 1.875991, 0.041556],
                        [0.055648, -0.204043, 1.057311]], np.float32)


def _lab_f_inv(t: np.ndarray) -> np.ndarray:
    return np.where(t > 6 / 29, t**3, 3 * (6 / 29) ** 2 * (t - 4 / 29))


def lab_to_linear_rgb(lab: np.ndarray) -> np.ndarray:
    """(N, 3) Lab -> (N, 3) linear sRGB, NOT clipped (OpenCV's own conversion clips)."""
    fy = (lab[:, 0] + 16) / 116
    f = np.stack([fy + lab[:, 1] / 500, fy, fy - lab[:, 2] / 200], axis=1)
    return (_lab_f_inv(f) * D65_WHITE) @ XYZ_TO_SRGB.T


def linear_to_srgb(c: np.ndarray) -> np.ndarray:
    c = np.clip(c, 0.0, 1.0)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * np.power(c, 1 / 2.4) - 0.055).astype(np.float32)


def desaturate_into_gamut(lab: np.ndarray) -> np.ndarray:
    """(N, 3) Lab -> (N, 3) sRGB in [0, 1] with exactly the luminance of L.

    An out-of-gamut colour is moved in linear RGB towards the gray of the same luminance Y, just far enough
    for every channel to fit: c(s) = Y + s·(c - Y) keeps Y (hence L) for every s, and the largest valid s
    has a closed form. Clipping channels instead would darken or brighten the pixel."""
    lin = lab_to_linear_rgb(lab)
    y = _lab_f_inv((lab[:, :1] + 16) / 116)  # (N, 1) luminance Y, fixed by L alone
    over = np.where(lin > 1, (1 - y) / np.maximum(lin - y, 1e-12), np.inf)
    under = np.where(lin < 0, y / np.maximum(y - lin, 1e-12), np.inf)
    s = np.clip(np.minimum(over, under).min(axis=1, keepdims=True), 0.0, 1.0)
    return linear_to_srgb(y + s * (lin - y))


# strictly inside (0, 1) for float32, as inRange's inclusive bounds
_INSIDE_LO, _INSIDE_HI = (float(np.nextafter(np.float32(0), np.float32(1))),) * 3, (float(np.nextafter(np.float32(1), np.float32(0))),) * 3


def merge_l_ab(l_full: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """Full-resolution L (H, W) + chroma at any size (h, w, 2) -> RGB uint8 (H, W, 3) with the same L.

    OpenCV converts every pixel (fast); only pixels it clipped (a channel at 0 or 1: usually a few
    percent) are redone by `desaturate_into_gamut`, which keeps their luminance. Done in strips of rows,
    so a 12-megapixel photo needs tens of MB of temporaries instead of a GB."""
    ab = upsample_ab(ab.astype(np.float32, copy=False), l_full.shape[:2])
    out = np.empty(l_full.shape[:2] + (3,), np.uint8)
    for rows in strips(l_full.shape[0]):
        lab = cv2.merge([l_full[rows].astype(np.float32, copy=False), ab[rows]])  # 7× np.dstack's speed
        rgb = lab_to_rgb(lab)
        edge = cv2.inRange(rgb, _INSIDE_LO, _INSIDE_HI) == 0  # a channel at or past 0 or 1; one pass, not six
        if edge.any():
            rgb[edge] = desaturate_into_gamut(lab[edge])
        out[rows] = to_uint8(rgb)
    return out


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    return (np.clip(rgb, 0.0, 1.0) * np.float32(255.0) + np.float32(0.5)).astype(np.uint8)


def ab_of(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 2) float32 chroma of an RGB float image."""
    return rgb_to_lab(rgb)[:, :, 1:]


GRAY_CHROMA = 5.0  # Lab chroma units; a photo whose 95th-percentile chroma is below this counts as gray


def is_near_gray(rgb: np.ndarray) -> bool:
    """A gray or near-gray photo (RGB float in [0, 1]): 95th-percentile Lab chroma, on every second pixel,
    under GRAY_CHROMA (about two just-noticeable differences). Training skips such photos (they teach nothing
    but "no colour") and evaluation cannot score them (no colour to measure)."""
    lab = rgb_to_lab(rgb[::2, ::2])
    return float(np.percentile(np.hypot(lab[..., 1], lab[..., 2]), 95)) < GRAY_CHROMA
