"""Hint propagation: make the network's chroma agree with the user's hints, each over its own region.

Each hint asks for a correction c_k: its colour, as far as the hinted spot's luminance allows (`gamut_ab`: chroma
scaled, hue kept), minus the network's a/b there. The correction spreads as far as a geodesic distance allows,

    d_k(x) = min over paths from hint k to x of  Σ_steps ( length / R  +  e / S  +  (e / T)² ),  e = max(0, |ΔL| − τ)

as in Yatziv and Sapiro, "Fast image and video colorization using chrominance blending" (IEEE TIP 2006) and
Criminisi et al.'s GeoS (ECCV 2008): distance alone (R, a share of the photo's size) fades every correction, so
the far side of a photo stays as the network made it; luminance that keeps changing (texture, shading) adds
distance (S), a sharp luminance edge is a wall (T, quadratic), and steps below τ are noise. A hint on a large
even region (a sky) fills it up to about R. Where hints reach a pixel, the nearest one's fade is shared out by
softmax(−κ·d) so the geodesically nearest hint wins, and two hints of two colours on two objects keep their own:

    ab(x) += fade(min_k d_k) · Σ_k softmax_k(−κ d) c_k,     fade(d) = max(0, exp(−d²/2) − ρ) / (1 − ρ)

(ρ: corrections under a tenth end, so nothing is tinted faintly far away). This replaced the graph form of Levin
et al. 2004 (a screened Poisson solve with one fade ε = 1e-5): with one hint nothing anchored the rest of the
photo, so one red hint moved the far side of 16 val_ood photos by |Δab| 45 (median), and a larger ε (1e-3) kept
it local but lost over a quarter of the ten-hint gain: a point's influence under such a solve drops within pixels.
Distances are found on a copy of at most SOLVE_SIDE px (Dijkstra, a few ms a hint) and upsampled.
The constants were chosen on a 26-photo subset of val_ood, then measured on all of it (README, guided colour).
"""
from __future__ import annotations

import cv2
import numpy as np

from .color import AB_SCALE, lab_to_linear_rgb

SOLVE_SIDE = 192  # long side of the grid the distances are found on (288: no better)
FADE_RADIUS = 0.7  # R: the reach in even regions, a share of the grid's long side (0.5: far-field 0.16, ten-hint cut 24.4%)
LUMA_STEP = 50.0  # S: L units of gradual change (texture, shading) that count as one R
EDGE_STEP = 15.0  # T: a sharp step of T units of L counts as one R, of 2T as four
GRAIN = 1.0  # τ: per-step L differences below this are noise and cost nothing
COMPETITION = 4.0  # κ: how strongly the nearest hint wins (1: hints blur into each other; 16: less gain)
TAIL = 0.1  # ρ: the share under which a correction ends (0: faint tints far away, no gain)


def propagate(ab: np.ndarray, l_small: np.ndarray, planes: np.ndarray) -> np.ndarray:
    """ab (h, w, 2) predicted at render size, L (h, w) at the same size, hint planes (3, h, w) as made by
    hints.hint_planes (a/AB_SCALE, b/AB_SCALE, mask) -> ab corrected to agree with the hints."""
    spots = hint_spots(planes)
    if not spots:
        return ab
    corrections = np.array([correction(ab, l_small, mask, target) for mask, target in spots])  # (K, 2)
    centres = [np.argwhere(mask).mean(axis=0) for mask, _ in spots]
    shares = hint_regions(l_small, centres)  # (K, h, w)
    return (ab + np.tensordot(shares, corrections, axes=(0, 0))).astype(np.float32)


def hint_regions(l_small: np.ndarray, centres: list[tuple[float, float]]) -> np.ndarray:
    """The share of its correction each hint gives each pixel, as `propagate` applies it: L (h, w) and hint
    centres (row, col) in its pixels -> (K, h, w) float32 in [0, 1], in the order of `centres`."""
    if not centres:
        return np.zeros((0,) + l_small.shape, np.float32)
    return hint_shares(distances(l_small, centres))


def region_overlay(l_full: np.ndarray, hints: list, render_factor: int) -> np.ndarray:
    """What each hint will change, to lay over the photo: a faint tint of its colour over its share and an
    outline where that share is half, RGBA uint8 at render size (a page scales it to the photo)."""
    from .color import merge_l_ab, render_size, resize_l
    height, width = l_full.shape[:2]
    h, w = render_size(height, width, render_factor)
    shares = hint_regions(resize_l(l_full, (h, w)), [(hint.y * h / height, hint.x * w / width) for hint in hints])
    overlay = np.zeros((h, w, 4), np.float32)
    for share, hint in zip(shares, hints):
        rgb = merge_l_ab(np.full((1, 1), 55.0, np.float32), np.float32([[hint.ab]]))[0, 0]
        inside = (share > 0.5).astype(np.uint8)
        outline = (inside - cv2.erode(inside, np.ones((3, 3), np.uint8))).astype(bool)
        alpha = np.where(outline, 0.85, 0.3 * share)
        stronger = alpha > overlay[..., 3]
        overlay[stronger] = np.concatenate([rgb / 255.0, [0.0]])[None]
        overlay[stronger, 3] = alpha[stronger]
    return (overlay * 255 + 0.5).astype(np.uint8)


def hint_shares(distance: np.ndarray) -> np.ndarray:
    """Geodesic distances (K, h, w) -> the share of each hint's correction at each pixel (K, h, w): the
    nearest hint's fade, split between the hints by softmax(−κ·d) so the nearest wins."""
    nearest = distance.min(axis=0)
    fade = np.maximum(np.exp(-0.5 * nearest ** 2) - TAIL, 0) / (1 - TAIL)
    compete = np.exp(-COMPETITION * (distance - nearest))  # 1 for the nearest
    return (fade * compete / compete.sum(axis=0)).astype(np.float32)


def hint_spots(planes: np.ndarray) -> list[tuple[np.ndarray, tuple[float, float]]]:
    """Hint planes -> one (mask, asked a/b) per hint: the pixels of each colour, split into connected patches
    (two touching patches of one colour ask the same and may stay one)."""
    mask = planes[2] > 0
    if not mask.any():
        return []
    colours, which = np.unique(planes[:2, mask].T, axis=0, return_inverse=True)
    spots = []
    for i, colour in enumerate(colours):
        same = np.zeros(mask.shape, np.uint8)
        same[mask] = which.ravel() == i
        count, labels = cv2.connectedComponents(same, connectivity=8)
        spots += [(labels == j, (float(colour[0] * AB_SCALE), float(colour[1] * AB_SCALE))) for j in range(1, count)]
    return spots


def correction(ab: np.ndarray, l_small: np.ndarray, mask: np.ndarray, asked: tuple[float, float]) -> np.ndarray:
    """What one hint asks of the network's a/b: the asked colour as far as its patch allows (`reachable`), minus
    what the network put there (mean over the hint's patch) -> (2,)."""
    return reachable(l_small[mask], asked) - ab[mask].mean(axis=0)


def reachable(l: np.ndarray, asked: tuple[float, float]) -> np.ndarray:
    """Pixels' L (N,) and an asked a/b -> the mean over them of that colour as far as each one's L allows (2,)."""
    l = l.astype(np.float32)
    return gamut_ab(l, np.broadcast_to(np.float32(asked), (len(l), 2))).mean(axis=0)


def gamut_ab(l: np.ndarray, ab: np.ndarray, steps: int = 20) -> np.ndarray:
    """L (N,) and a/b (N, 2) -> a/b with the chroma scaled down (hue and L kept) just enough to fit sRGB.
    Clipping RGB channels instead would shift the hue and lightness the user asked for."""
    def fits(scale):
        lab = np.concatenate([l[:, None], ab * scale[:, None]], axis=1).astype(np.float32)
        lin = lab_to_linear_rgb(lab)
        return ((lin >= -1e-4) & (lin <= 1 + 1e-4)).all(axis=1)
    low, high = np.zeros(len(l)), np.ones(len(l))
    inside = fits(high)
    for _ in range(steps):  # bisection on the chroma scale: the gamut is convex along a chroma ray
        mid = (low + high) / 2
        ok = fits(mid)
        low, high = np.where(ok, mid, low), np.where(ok, high, mid)
    return (ab * np.where(inside, 1.0, low)[:, None]).astype(np.float32)


def distances(l_small: np.ndarray, centres: list) -> np.ndarray:
    """L (h, w) and hint centres (row, col) -> each hint's geodesic distance d_k at render size, (K, h, w), in
    units of R."""
    h, w = l_small.shape
    scale = min(1.0, SOLVE_SIDE / max(h, w))
    gh, gw = max(2, round(h * scale)), max(2, round(w * scale))
    guide = cv2.resize(l_small.astype(np.float32), (gw, gh), interpolation=cv2.INTER_AREA)
    seeds = [min(gh - 1, int((r + 0.5) * gh / h)) * gw + min(gw - 1, int((c + 0.5) * gw / w)) for r, c in centres]
    distance = geodesic(guide, seeds, FADE_RADIUS * max(gh, gw)).astype(np.float32)  # (K, gh, gw)
    return np.stack([cv2.resize(d, (w, h), interpolation=cv2.INTER_LINEAR) for d in distance])


def geodesic(guide: np.ndarray, seeds: list[int], radius: float) -> np.ndarray:
    """L on the grid (gh, gw) -> distance d_k from each seed (a flat grid index) over its 8 neighbours, (K, gh, gw)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import dijkstra
    gh, gw = guide.shape[:2]
    index = np.arange(gh * gw).reshape(gh, gw)
    flat = guide.ravel()
    rows, cols, costs = [], [], []
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        a = index[:gh - dy, max(0, -dx):gw - max(0, dx)]
        b = index[dy:, max(0, dx):gw + min(0, dx)]
        excess = np.maximum(np.abs(flat[a] - flat[b]) - GRAIN, 0)  # (gh - dy, gw - |dx|)
        cost = np.hypot(dy, dx) / radius + excess / LUMA_STEP + (excess / EDGE_STEP) ** 2
        rows.append(a.ravel())
        cols.append(b.ravel())
        costs.append(cost.ravel())
    graph = coo_matrix((np.concatenate(costs), (np.concatenate(rows), np.concatenate(cols))),
                       shape=(gh * gw, gh * gw)).tocsr()
    return dijkstra(graph, directed=False, indices=seeds).reshape(len(seeds), gh, gw)
