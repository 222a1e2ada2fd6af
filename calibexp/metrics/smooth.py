"""Smooth ECE (Błasiok & Nakkiran, "Smooth ECE: Principled Reliability Diagrams via Kernel
Smoothing", ICLR 2024).

A torch port of relplot 1.0.3's ``smECE`` (the reference implementation), so it runs on the
device the logits are on and needs no pandas/seaborn at run time; it agrees with
``relplot.smECE`` to float rounding (tests/test_smooth_ece.py). With f = confidence, y = 1[correct]
and residuals r = f − y:

    smECE_σ = ∫ |r̂_σ(t)| δ̂_σ(t) dt / ∫ δ̂_σ(t) dt,   r̂_σ = (K_σ * r) / δ̂_σ,   δ̂_σ = K_σ * 1 + 1e-4,

with K_σ the Gaussian kernel reflected at 0 and 1 (no boundary bias), applied on a grid: the
samples are split linearly onto G = ⌊max(2000, 20/σ)/2⌋ + 1 points, the grid is mirrored on both
sides, convolved and cropped, then interpolated to max(200, 10/σ) evaluation points. smECE is
smECE_σ* at the fixed point σ* = smECE_σ*, found by bisection on [0, 1] (10 halvings, σ ≥ 1e-3).
"""

from __future__ import annotations

import math

import torch

from calibexp.metrics.predictions import Predictions
from calibexp.metrics.registry import METRICS

MESH_POINTS = 200  # relplot's config.smECE_mesh_pts
DENSITY_EPS = 1e-4


def _to_grid(f: torch.Tensor, values: torch.Tensor, points: int) -> torch.Tensor:
    """Each value split linearly between the two grid points around f (relplot's
    smooth_round_to_grid): one scatter, O(N)."""
    scaled = f * (points - 1)
    left = scaled.long().clamp(0, points - 2)
    frac = scaled - left
    grid = torch.zeros(points, dtype=f.dtype, device=f.device)
    grid.index_add_(0, left, (1 - frac) * values)
    grid.index_add_(0, left + 1, frac * values)
    return grid


def _reflected_smooth(grid: torch.Tensor, sigma: float) -> torch.Tensor:
    """The grid convolved with a Gaussian of std σ, reflected at both ends."""
    points = len(grid)
    t = torch.linspace(0, 1, points, dtype=grid.dtype, device=grid.device)
    kernel = torch.exp(-((t - 0.5) ** 2) / (2 * sigma**2)) / (math.sqrt(2 * math.pi) * sigma)
    extended = torch.cat([grid.flip(0)[:-1], grid, grid.flip(0)[1:]])
    # np.convolve flips the kernel; conv1d does not, so flip it here to match exactly.
    valid = torch.nn.functional.conv1d(extended[None, None], kernel.flip(0)[None, None])[0, 0]
    return valid[points // 2 : points // 2 + points]


def _interpolate(t: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    n = len(grid)
    index = (t * (n - 1)).long().clamp(0, n - 2)
    residual = (t - index / (n - 1)) * (n - 1)
    return grid[index] * (1 - residual) + grid[index + 1] * residual


def smece_sigma(f: torch.Tensor, y: torch.Tensor, sigma: float) -> torch.Tensor:
    """smECE at a fixed bandwidth σ (relplot's ``smECE_sigma``), f and y float64 [N]."""
    points = max(2000, round(20 / sigma)) // 2 + 1
    t = torch.linspace(0, 1, max(round(10 / sigma), MESH_POINTS), dtype=f.dtype, device=f.device)
    residual = _interpolate(t, _reflected_smooth(_to_grid(f, f - y, points), sigma))
    density = _interpolate(t, _reflected_smooth(_to_grid(f, torch.ones_like(f), points), sigma))
    density = density + DENSITY_EPS
    return ((residual / density).abs() * density).sum() / density.sum()


def smece_of(
    f: torch.Tensor, y: torch.Tensor, eps: float = 1e-3, halvings: int = 10
) -> tuple[float, float]:
    """(smECE, σ*) with σ* the fixed point smECE_σ = σ, found by relplot's bisection."""

    def small_enough(sigma: float) -> bool:
        return sigma < eps or sigma < smece_sigma(f, y, sigma).item()

    sigma = 1.0
    if not small_enough(sigma):
        high, low = 1.0, 0.0
        for _ in range(halvings):
            mid = (high + low) / 2
            if small_enough(mid):
                low = mid
            else:
                high = mid
        sigma = high
    return smece_sigma(f, y, sigma).item(), sigma


@METRICS.register("smece")
def smece(p: Predictions) -> torch.Tensor:
    """Smooth ECE of the top-label confidence (see the module docstring)."""
    value, _ = smece_of(p.confidence.double(), p.correct.double())
    return torch.tensor(value, dtype=torch.float32, device=p.logits.device)
