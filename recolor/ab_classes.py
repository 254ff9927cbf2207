"""Colour as classification: a/b quantized into bins, predicted as a distribution, decoded by its annealed mean.

Zhang, Isola & Efros, "Colorful Image Colorization", ECCV 2016: a regression loss averages the plausible colours
of an object (a red or a blue car) into a brownish gray; a distribution over a/b bins keeps them apart, and its
*annealed mean* (softmax at temperature T < 1, then the mean) picks the likely mode while staying smooth in space.
Training uses a soft-encoded target (each pixel's 5 nearest bins, Gaussian weights) and reweights pixels by
how rare their colour is (class rebalancing), so the network does not settle for the common desaturated bins.

Everything here is torch, for the model (decode) and for training (targets, weights, loss).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

GRID = 10.0  # a/b units between bin centres, as Zhang et al.
NEIGHBOURS, SIGMA = 5, 5.0  # soft encoding: nearest bins and their Gaussian width (a/b units)
Curve = tuple[tuple[float, float], ...]  # (confidence, gain) knots, confidence rising: see curve_gain


def bin_centres() -> torch.Tensor:
    """(Q, 2) a/b centres of the GRID-spaced bins that some sRGB colour falls in (Q = 260 here, where Zhang's
    313 count every bin in gamut at some L). Derived from a fixed 40³ sRGB grid, so the same everywhere; a model
    keeps its own copy as a buffer, so a weights file never depends on this function again."""
    from .color import rgb_to_lab
    g = np.linspace(0.0, 1.0, 40, dtype=np.float32)
    rgb = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 1, 3)
    ab = rgb_to_lab(rgb)[:, 0, 1:]
    return torch.from_numpy(np.unique(np.round(ab / GRID).astype(np.int64), axis=0) * GRID).float()


def annealed_mean(logits: torch.Tensor, centres: torch.Tensor, temperature: float,
                  curve: Curve | None = None) -> torch.Tensor:
    """Logits (B, Q, H, W) -> a/b (B, 2, H, W): the mean of softmax(logits / T) over the bin centres, and with a
    curve, × the curve's gain at each pixel's confidence (`curve_gain`)."""
    centres = centres.to(logits.dtype)
    if torch.onnx.is_in_onnx_export():
        return _annealed_mean_as_conv(logits, centres, temperature, curve)
    ab = torch.einsum("bqhw,qc->bchw", torch.softmax(logits / temperature, dim=1), centres)
    if curve is None:
        return ab
    return ab * curve_gain(confidence(entropy(logits), len(centres)), curve)


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Logits (B, Q, H, W) -> (B, 1, H, W): the entropy H of the model's own (T = 1) distribution."""
    return -(torch.softmax(logits, dim=1) * torch.log_softmax(logits, dim=1)).sum(1, keepdim=True)


def confidence(h: torch.Tensor, bins: int) -> torch.Tensor:
    """Entropy H -> c = 1 - H / log Q: 0 for a flat distribution over the Q bins, 1 for all mass on one bin."""
    return 1.0 - h * (1.0 / math.log(bins))


def curve_gain(c: torch.Tensor, curve: Curve) -> torch.Tensor:
    """The gain at each pixel's confidence c (`confidence`): piecewise linear through the curve's
    (confidence, gain) knots, flat beyond its ends.

    Where the distribution is flat the model does not know the colour, and for ΔE gray is the best guess;
    where it is peaked the colour is usually right and can be stronger than one constant gain could afford.
    The surest pixels want less again (on val_ood they are mostly near-neutral; on familiar photos a high gain
    there over-colours skies and faces). On val_ood: ΔE about 0.2 lower at equal colourfulness, val no worse
    (research/model-notebook.md, step 16)."""
    out = torch.full_like(c, curve[0][1])
    for (c0, g0), (c1, g1) in zip(curve, curve[1:]):
        out = out + (g1 - g0) * ((c - c0) * (1.0 / (c1 - c0))).clamp(0.0, 1.0)
    return out


def _annealed_mean_as_conv(logits: torch.Tensor, centres: torch.Tensor, temperature: float,
                           curve: Curve | None = None) -> torch.Tensor:
    """The annealed mean as exp(z - max z) through one 1×1 conv whose filters are the centres and a row of ones
    (the softmax's sum), for ONNX Runtime: its softmax over the channel axis transposes the whole logits tensor
    (with the Einsum, a third of the network's time), where a 1×1 conv runs in its fast blocked layout. Eager
    torch is the other way round (its softmax is fused, a 3-filter conv slow), hence two forms. The curve's
    entropy is log S - Σ e·d / S with d = logits - max, e = exp(d), S = Σ e: sums, again as 1×1 convs."""
    d = logits - logits.amax(dim=1, keepdim=True)
    weight = torch.cat([centres.t(), torch.ones_like(centres[:, :1]).t()])[..., None, None]  # (3, Q, 1, 1)
    out = F.conv2d(torch.exp(d * (1.0 / temperature)), weight)
    ab = out[:, :2] / out[:, 2:]
    if curve is None:
        return ab
    e, ones = torch.exp(d), weight[2:]
    s = F.conv2d(e, ones)
    return ab * curve_gain(confidence(torch.log(s) - F.conv2d(e * d, ones) / s, len(centres)), curve)


def nearest_bins(ab: torch.Tensor, centres: torch.Tensor, k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """ab (N, 2) -> squared distances and indices (N, k) of the k nearest centres."""
    d2, idx = torch.cdist(ab.float(), centres.float()).pow(2).topk(k, dim=1, largest=False)
    return d2, idx


def soft_targets(ab: torch.Tensor, centres: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ab (B, 2, H, W) -> target distributions (B, Q, H, W) over the NEIGHBOURS nearest bins (Gaussian weights)
    and the nearest bin of each pixel (B, H, W)."""
    b, _, h, w = ab.shape
    d2, idx = nearest_bins(ab.permute(0, 2, 3, 1).reshape(-1, 2), centres, NEIGHBOURS)
    weights = torch.softmax(-d2 / (2 * SIGMA**2), dim=1)
    target = torch.zeros(d2.shape[0], len(centres), device=ab.device).scatter_(1, idx, weights)
    return target.reshape(b, h, w, -1).permute(0, 3, 1, 2), idx[:, 0].reshape(b, h, w)


def rebalancing_weights(counts: torch.Tensor, mix: float = 0.5) -> torch.Tensor:
    """Per-bin loss weights from bin counts over training pixels: w ∝ 1 / ((1 - mix)·p + mix/Q), scaled so the
    expected weight under p is 1 (Zhang et al.'s λ = mix = 0.5). mix = 1 weighs every pixel alike."""
    p = counts.double() / counts.sum()
    w = 1.0 / ((1.0 - mix) * p + mix / len(p))
    return (w / (p * w).sum()).float()


def class_loss(logits: torch.Tensor, ab: torch.Tensor, centres: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Rebalanced cross-entropy of logits (B, Q, h, w) against ab (B, 2, H, W) area-averaged to (h, w)."""
    factor = ab.shape[-1] // logits.shape[-1]
    target, nearest = soft_targets(F.avg_pool2d(ab.float(), factor) if factor > 1 else ab.float(), centres)
    ce = -(target * F.log_softmax(logits.float(), dim=1)).sum(1)
    return (ce * weights.to(ce.device)[nearest]).mean()
