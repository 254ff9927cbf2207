"""Hint propagation: make the network's chroma agree with the user's hints, spread along the photo's regions.

The network sees the hints as input (model.HintBranch), but what it learned decides how far and how exactly it
follows them. This step makes a hint hold: the correction each hint asks for (its a/b minus the network's a/b
there) is spread over the photo by minimising

    E(U) = Σ_{r~s} w_rs (U_r − U_s)²  +  λ Σ_hints (U_r − c_r)²  +  ε Σ_r U_r²,
    w_rs = exp(−(L_r − L_s)² / 2σ²)    (4-neighbours; σ from the photo's own luminance steps)

so a correction flows freely through pixels of similar luminance, stops at edges, and fades to nothing far
away (ε), leaving the rest of the photo as the network made it. This is the graph form of Levin, Lischinski and
Weiss, "Colorization using Optimization" (SIGGRAPH 2004), applied to the correction rather than to the colour.
It is solved on a copy of at most SOLVE_SIDE px (a sparse linear system: tens of ms) and upsampled.
"""
from __future__ import annotations

import cv2
import numpy as np

from .color import AB_SCALE

SOLVE_SIDE = 192  # long side of the grid the system is solved on
HINT_WEIGHT = 100.0  # λ: hints hold almost exactly
FADE = 1e-5  # ε: how quickly a correction fades with distance in flat regions (~1/sqrt(ε) grid px)
# σ² = this × the photo's mean squared luminance step, so a step well above its usual one is an edge. Chosen on
# 16 val photos with 10 simulated hints (PSNR 29.07 dB; 0.125: 29.00, 0.5: 28.98, 2: 28.74, 8: 28.61; ε 1e-6 and
# grids of 128 or 256 px no better), then reported on val_ood (benchmarks/README.md).
EDGE_SIGMA_SCALE = 0.25
SPREAD_PX = 4  # the hinted area is grown by this much (render px) before the correction is taken (_widened)


def propagate(ab: np.ndarray, l_small: np.ndarray, planes: np.ndarray) -> np.ndarray:
    """ab (h, w, 2) predicted at render size, L (h, w) at the same size, hint planes (3, h, w) as made by
    hints.hint_planes (a/AB_SCALE, b/AB_SCALE, mask) -> ab corrected to agree with the hints."""
    if not (planes[2] > 0).any():
        return ab
    h, w = l_small.shape
    scale = min(1.0, SOLVE_SIDE / max(h, w))
    gh, gw = max(2, round(h * scale)), max(2, round(w * scale))
    mask, target = _widened(planes, SPREAD_PX)
    residual = np.where(mask[..., None], target - ab, 0).astype(np.float32)
    # onto the grid: the mean correction of the hinted pixels that fall in each grid cell
    weight = cv2.resize(mask.astype(np.float32), (gw, gh), interpolation=cv2.INTER_AREA)
    summed = cv2.resize(residual, (gw, gh), interpolation=cv2.INTER_AREA)
    hinted = weight > 1e-6
    c = np.where(hinted[..., None], summed / np.maximum(weight, 1e-6)[..., None], 0)
    l_grid = cv2.resize(l_small.astype(np.float32), (gw, gh), interpolation=cv2.INTER_AREA)
    field = _solve(l_grid, hinted, c)
    return (ab + cv2.resize(field, (w, h), interpolation=cv2.INTER_LINEAR)).astype(np.float32)


def _widened(planes: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """The hinted area grown by `radius` px, and the hint colour over it ((h, w) bool, (h, w, 2) a/b).

    The network follows a hint on the hinted pixels themselves (its hint input), so the correction there
    is about zero; a few pixels out, where its own guess shows again, is where the correction to spread is."""
    size = (2 * radius + 1, 2 * radius + 1)
    count = cv2.boxFilter(planes[2], -1, size, normalize=False)
    sums = [cv2.boxFilter(planes[i] * planes[2], -1, size, normalize=False) for i in (0, 1)]
    target = np.stack(sums, axis=-1) / np.maximum(count, 1e-6)[..., None] * AB_SCALE
    return count > 1e-6, target.astype(np.float32)


def _solve(l_grid: np.ndarray, hinted: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The minimiser of E on the grid: (Laplacian + λD + εI) U = λ D c, for a and b at once. -> (gh, gw, 2)."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import spsolve
    gh, gw = l_grid.shape
    n = gh * gw
    index = np.arange(n).reshape(gh, gw)
    steps = [(index[:, :-1], index[:, 1:], l_grid[:, :-1] - l_grid[:, 1:]),
             (index[:-1, :], index[1:, :], l_grid[:-1, :] - l_grid[1:, :])]
    sigma2 = EDGE_SIGMA_SCALE * np.mean(np.concatenate([d.ravel() ** 2 for _, _, d in steps])) + 1e-3
    rows, cols, vals = [], [], []
    for a, b, diff in steps:
        wgt = np.exp(-diff.ravel() ** 2 / (2 * sigma2))
        rows += [a.ravel(), b.ravel()]
        cols += [b.ravel(), a.ravel()]
        vals += [-wgt, -wgt]
    off = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    degree = -np.asarray(off.sum(axis=1)).ravel()
    lam = HINT_WEIGHT * hinted.ravel().astype(np.float64)
    system = (off + sp.diags(degree + lam + FADE)).tocsc()
    rhs = lam[:, None] * c.reshape(n, 2)
    return spsolve(system, rhs).reshape(gh, gw, 2).astype(np.float32)
