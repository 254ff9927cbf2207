"""Quality metrics for colorization, defined as the colorization literature quotes them: per image, and
(at the end) the flicker of a colorized clip (warping error, CDC; see video/temporal.py for their references).

All functions take RGB uint8 arrays (H, W, 3), ground truth first, and return one number per image;
a data set's figure is the mean of the per-image numbers (as in Zhang et al. 2016, DDColor, CT2).

- CIEDE2000 ΔE: sRGB (D65) -> CIE Lab (skimage `rgb2lab`), per-pixel ΔE00 with kL = kC = kH = 1, mean over
  pixels. Formula: CIE 142-2001; implementation notes and test data: Sharma, Wu & Dalal, "The CIEDE2000
  color-difference formula: implementation notes, supplementary test data, and mathematical observations",
  Color Res. Appl. 2005 (skimage's `deltaE_ciede2000` follows them; tests/test_metrics.py checks their table).
  ΔE ≈ 1 is a just-noticeable difference; a gray image against its colour original typically scores 10–15.
- PSNR: on RGB with peak 255, MSE over all pixels and the three channels: 10·log10(255² / MSE). Identical
  images give +inf; `summarize` caps each image at PSNR_CAP dB so one perfect image cannot make a mean inf.
- SSIM: Wang et al., "Image quality assessment: from error visibility to structural similarity", TIP 2004,
  with the paper's settings (11×11 Gaussian window σ = 1.5, K1 = 0.01, K2 = 0.03, population covariance),
  computed per RGB channel and averaged (skimage `structural_similarity(channel_axis=-1)`).
- Colourfulness: Hasler & Süsstrunk, "Measuring colourfulness in natural images", SPIE 2003, the metric
  quoted by DDColor (Kang et al. 2023) and CT2 (Weng et al. 2022): with rg = R − G and yb = (R + G)/2 − B on
  the 0–255 scale, M = sqrt(σ_rg² + σ_yb²) + 0.3·sqrt(μ_rg² + μ_yb²). A gray image scores exactly 0.
"""
from __future__ import annotations

import math
from typing import Iterable, Mapping

import cv2
import numpy as np

from .flow import flow, make_dis, reliable_mask, to_gray8, warp

PSNR_CAP = 100.0  # dB; what an identical image counts as in a mean
# Hasler & Süsstrunk's colourfulness, here and in its differentiable twin (training/losses.py): one definition
COLOURFULNESS_SCALE = 255.0  # the paper's 0-255 RGB scale; M of an image in [0, 1] is measured on it
COLOURFULNESS_MEAN_WEIGHT = 0.3  # M = sqrt(σ_rg² + σ_yb²) + 0.3·sqrt(μ_rg² + μ_yb²)


def _check_pair(truth: np.ndarray, pred: np.ndarray) -> None:
    if truth.shape != pred.shape or truth.ndim != 3 or truth.shape[2] != 3:
        raise ValueError(f"need two RGB images of the same shape, got {truth.shape} and {pred.shape}")
    if truth.dtype != np.uint8 or pred.dtype != np.uint8:
        raise ValueError(f"need uint8 RGB, got {truth.dtype} and {pred.dtype}")


def delta_e2000_lab(lab_truth: np.ndarray, lab_pred: np.ndarray) -> float:
    """Mean CIEDE2000 between two Lab arrays (..., 3)."""
    from skimage.color import deltaE_ciede2000
    return float(np.mean(deltaE_ciede2000(np.asarray(lab_truth, np.float64), np.asarray(lab_pred, np.float64))))


def delta_e2000(truth: np.ndarray, pred: np.ndarray) -> float:
    """Mean per-pixel CIEDE2000 ΔE between two RGB uint8 images (sRGB, D65)."""
    from skimage.color import rgb2lab
    _check_pair(truth, pred)
    return delta_e2000_lab(rgb2lab(truth), rgb2lab(pred))


def psnr(truth: np.ndarray, pred: np.ndarray) -> float:
    """PSNR in dB over RGB with peak 255; +inf for identical images."""
    _check_pair(truth, pred)
    mse = np.mean((truth.astype(np.float64) - pred.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else float(10.0 * np.log10(255.0**2 / mse))


def ssim(truth: np.ndarray, pred: np.ndarray) -> float:
    """SSIM (Wang et al. 2004 settings) averaged over the RGB channels; 1.0 for identical images."""
    from skimage.metrics import structural_similarity
    _check_pair(truth, pred)
    if min(truth.shape[:2]) < 11:
        raise ValueError(f"SSIM needs images of at least 11×11 pixels, got {truth.shape[1]}×{truth.shape[0]}")
    return float(structural_similarity(truth, pred, channel_axis=-1, data_range=255, gaussian_weights=True,
                                       sigma=1.5, use_sample_covariance=False))


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler & Süsstrunk (2003) colourfulness M of an RGB image; uint8, or float in [0, 1]."""
    rgb = np.asarray(rgb)
    scale = 1.0 if rgb.dtype == np.uint8 else COLOURFULNESS_SCALE
    r, g, b = (rgb[..., i].astype(np.float64) * scale for i in range(3))
    rg, yb = r - g, 0.5 * (r + g) - b
    return float(np.hypot(rg.std(), yb.std()) + COLOURFULNESS_MEAN_WEIGHT * np.hypot(rg.mean(), yb.mean()))


def image_metrics(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """All four metrics of one prediction against its ground truth."""
    return {"delta_e": delta_e2000(truth, pred), "psnr": psnr(truth, pred), "ssim": ssim(truth, pred),
            "colourfulness": colourfulness(pred)}


def summarize(rows: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Mean of each metric over images; PSNR capped at PSNR_CAP per image first."""
    rows = list(rows)
    if not rows:
        return {}
    out = {}
    for key in rows[0]:
        values = [min(r[key], PSNR_CAP) if "psnr" in key else r[key] for r in rows]
        out[key] = float(np.mean(values))
    return out


# ----------------------------------------------------------------------------------------------- flicker
# Temporal metrics of a colorized clip (references in video/temporal.py's docstring); benchmarks and tests use them.
def input_flow(l_prev: np.ndarray, l_cur: np.ndarray, dis: cv2.DISOpticalFlow | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Backward flow (t -> t-1) and its reliable-pixel mask, computed on the *input* luminance, so that the
    colorizer's own output cannot fool the measurement."""
    dis = dis or make_dis()
    cur8, prev8 = to_gray8(l_cur), to_gray8(l_prev)
    flow_b, flow_f = flow(dis, cur8, prev8), flow(dis, prev8, cur8)
    return flow_b, reliable_mask(flow_b, flow_f, l_cur, warp(l_prev, flow_b))


def warping_error(ab_prev: np.ndarray, ab_cur: np.ndarray, flow_b: np.ndarray, mask: np.ndarray) -> float:
    """Lai et al. 2018 warping error of chroma between output frames t-1 and t: mean squared a/b difference
    between frame t and frame t-1 warped onto it, over the non-occluded pixels (see `input_flow`)."""
    if not mask.any():
        return float("nan")
    return chroma_energy(ab_cur - warp(ab_prev, flow_b), mask)  # the difference's mean squared a/b


def chroma_energy(ab: np.ndarray, mask: np.ndarray) -> float:
    """Mean squared chroma a² + b² over the masked pixels: the scale of `warping_error` for a frame.

    Warping error is squared chroma, so a model k times as colourful, and exactly as steady, flickers k² times
    as much by it; warping error over chroma energy (over a clip: the ratio of their means) is the flicker as a
    share of the colour there is, the same for both, and compares models of different boldness."""
    return float(np.mean(np.sum(ab[mask] ** 2, axis=-1))) if mask.any() else float("nan")


def mean_warping_error(ab_frames: list[np.ndarray], l_frames: list[np.ndarray]) -> float:
    """warping_error averaged over consecutive pairs of a clip (ab (H, W, 2), L (H, W) of the input)."""
    dis = make_dis()
    errors = [warping_error(ab_frames[t - 1], ab_frames[t], *input_flow(l_frames[t - 1], l_frames[t], dis))
              for t in range(1, len(ab_frames))]
    return float(np.nanmean(errors)) if errors else float("nan")


def channel_histograms(rgb: np.ndarray) -> np.ndarray:
    """(3, 256) normalised per-channel histograms of an RGB uint8 frame."""
    hist = np.stack([np.bincount(rgb[..., c].ravel(), minlength=256) for c in range(3)]).astype(np.float64)
    return hist / hist.sum(axis=1, keepdims=True)


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Mean over rows of the Jensen–Shannon divergence (natural log, in [0, ln 2])."""
    m = (p + q) / 2

    def kl(a, b):
        nz = a > 0
        return np.sum(np.where(nz, a * np.log(np.where(nz, a, 1) / np.where(nz, b, 1)), 0.0), axis=-1)
    return float(np.mean(0.5 * kl(p, m) + 0.5 * kl(q, m)))


def cdc(frames_rgb: list[np.ndarray], offsets: tuple[int, ...] = (1, 2, 4)) -> float:
    """Colour distribution consistency: JS divergence of per-channel RGB histograms of frames t and t+k,
    averaged over t, then over k in offsets. Lower is steadier."""
    hists = [channel_histograms(f) for f in frames_rgb]
    per_offset = [np.mean([js_divergence(hists[t], hists[t + k]) for t in range(len(hists) - k)])
                  for k in offsets if len(hists) > k]
    return float(np.mean(per_offset)) if per_offset else float("nan")
