"""Smooth ECE (Błasiok & Nakkiran, "Smooth ECE: Principled Reliability Diagrams via Kernel
Smoothing", ICLR 2024).

A torch port of relplot 1.0.3's ``smECE`` (the reference implementation), so it runs on the
device the logits are on and needs no pandas/seaborn at run time; it agrees with
``relplot.smECE`` to float rounding (tests/metrics/test_reference_implementations.py,
tests/plots/test_reliability.py) and is 3-10x faster (benchmarks/metrics.py). With
f = confidence, y = 1[correct] and residuals r = f − y:

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


def _prefix(values: torch.Tensor) -> torch.Tensor:
    return torch.cat([values.new_zeros(1), values.cumsum(0)])


class _SortedSamples:
    """Samples sorted by f, with prefix sums of v and f·v for each value v placed on grids.

    relplot splits every sample linearly between the two grid points around it, one pass over
    the N samples for each grid size G (``smooth_round_to_grid``). With the samples sorted, the
    samples between grid points j and j+1 are one segment [b_j, b_{j+1}) (b_j by binary search),
    and what they give the two points is exact algebra on segment sums:

        Σ_seg (1 − frac_i) v_i  to point j,   Σ_seg frac_i v_i = (G−1) Σ_seg f_i v_i − j Σ_seg v_i
        to point j+1,   frac_i = (G−1) f_i − j,

    so each grid costs O(G log N) after one O(N) pass per value. Linear splitting is continuous
    in f, so a sample exactly on a grid point gives the same grid from either segment."""

    def __init__(self, f: torch.Tensor, y: torch.Tensor) -> None:
        self.f = f
        self.values = {
            "residual": lambda: f - y,
            "mass": lambda: torch.ones_like(f),
            "y": lambda: y,
        }
        self.sums: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def grid(self, points: int, which: str) -> torch.Tensor:
        if which not in self.sums:
            values = self.values[which]()
            self.sums[which] = (_prefix(values), _prefix(self.f * values))
        sum_v, sum_fv = self.sums[which]
        j = torch.arange(points - 1, dtype=self.f.dtype, device=self.f.device)
        starts = torch.searchsorted(self.f, j / (points - 1))
        bounds = torch.cat([starts, starts.new_full((1,), len(self.f))])
        segment_v = sum_v[bounds[1:]] - sum_v[bounds[:-1]]
        segment_fv = sum_fv[bounds[1:]] - sum_fv[bounds[:-1]]
        upper = (points - 1) * segment_fv - j * segment_v
        grid = torch.zeros(points, dtype=self.f.dtype, device=self.f.device)
        grid[:-1] += segment_v - upper
        grid[1:] += upper
        return grid


def _fft_size(points: int) -> int:
    """A power of two that holds the full convolution of the 3G − 2 reflected grid points with
    the G-point kernel (pocketfft is several times slower on sizes with large prime factors)."""
    return 1 << (4 * points - 4).bit_length()


def _reflected_spectrum(grid: torch.Tensor) -> torch.Tensor:
    """The FFT of the grid extended by reflection on both sides (relplot's ``ext_vals``)."""
    extended = torch.cat([grid.flip(0)[:-1], grid, grid.flip(0)[1:]])
    return torch.fft.rfft(extended, _fft_size(len(grid)))


def _reflected_smooth(spectra: torch.Tensor, points: int, sigma: float) -> torch.Tensor:
    """The G-point grids behind ``spectra`` (one per row) convolved with a Gaussian of std σ,
    reflected at both ends: relplot's ``np.convolve(ext_vals, kernel, "valid")``, cropped to G
    points, by FFT. The direct form is O(G²), which at small σ (G = 20/σ, up to 20,000 points)
    takes seconds; the FFT is O(G log G) and agrees to float64 rounding."""
    t = torch.linspace(0, 1, points, dtype=torch.float64, device=spectra.device)
    kernel = torch.exp(-((t - 0.5) ** 2) / (2 * sigma**2)) / (math.sqrt(2 * math.pi) * sigma)
    size = _fft_size(points)
    full = torch.fft.irfft(spectra * torch.fft.rfft(kernel, size), size)
    valid = full[..., points - 1 : 3 * points - 2]  # np.convolve's "valid" part
    return valid[..., points // 2 : points // 2 + points]


def _interpolate(t: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of the grid(s) on the last axis at points t ∈ [0, 1]."""
    n = grid.shape[-1]
    index = (t * (n - 1)).long().clamp(0, n - 2)
    residual = (t - index / (n - 1)) * (n - 1)
    return grid[..., index] * (1 - residual) + grid[..., index + 1] * residual


class _Grids:
    """The samples' residuals f − y, unit masses and outcomes y on a grid of G points (as the
    spectrum of the reflected grid), each made once per G: the grid depends on σ only through G,
    which is 1001 for every σ ≥ 0.01, so the ≤ 11 bandwidths of the bisection share one grid
    and one FFT instead of redoing both each time as relplot does. f must be ascending."""

    def __init__(self, f: torch.Tensor, y: torch.Tensor) -> None:
        self.f, self.y = f, y
        self.samples = _SortedSamples(f, y)
        self.cache: dict[tuple[int, str], torch.Tensor] = {}

    def __call__(self, points: int, which: str) -> torch.Tensor:
        if (points, which) not in self.cache:
            grid = self.samples.grid(points, which)
            self.cache[points, which] = _reflected_spectrum(grid)
        return self.cache[points, which]

    def smoothed(self, which: tuple[str, ...], sigma: float, mesh: torch.Tensor) -> torch.Tensor:
        """K_σ * values for each of ``which`` (one row each), on ``mesh``: one kernel FFT and
        one inverse FFT for all of them."""
        points = max(2000, round(20 / sigma)) // 2 + 1
        spectra = torch.stack([self(points, w) for w in which])
        return _interpolate(mesh, _reflected_smooth(spectra, points, sigma))


def evaluation_mesh(sigma: float, like: torch.Tensor) -> torch.Tensor:
    points = max(round(10 / sigma), MESH_POINTS)
    return torch.linspace(0, 1, points, dtype=like.dtype, device=like.device)


def smece_sigma(grids: _Grids, sigma: float) -> torch.Tensor:
    """smECE at a fixed bandwidth σ (relplot's ``smECE_sigma``)."""
    mesh = evaluation_mesh(sigma, grids.f)
    residual, mass = grids.smoothed(("residual", "mass"), sigma, mesh)
    density = mass + DENSITY_EPS
    return ((residual / density).abs() * density).sum() / density.sum()


def _fixed_point(grids: _Grids, eps: float = 1e-3, halvings: int = 10) -> float:
    """σ* with smECE_σ* = σ*, by relplot's bisection on [0, 1] (its upper end is returned)."""

    def small_enough(sigma: float) -> bool:
        return sigma < eps or sigma < smece_sigma(grids, sigma).item()

    if small_enough(1.0):
        return 1.0
    high, low = 1.0, 0.0
    for _ in range(halvings):
        mid = (high + low) / 2
        if small_enough(mid):
            low = mid
        else:
            high = mid
    return high


def _bandwidth(p: Predictions) -> tuple[_Grids, float]:
    """The samples on their grids and σ*, found once per ``Predictions``: the smECE metric and
    the smooth reliability curve of the same predictions share one bisection."""

    def compute() -> tuple[_Grids, float]:
        grids = _Grids(p.confidence.double()[p.order], p.correct.double()[p.order])
        return grids, _fixed_point(grids)

    return p.memo("smece_bandwidth", compute)


def smooth_reliability(p: Predictions, points: int = 200) -> dict[str, list]:
    """relplot's smooth reliability curve (``prepare_rel_diagram`` without its bootstrap):
    on a mesh of ``points`` confidences t, the kernel-smoothed accuracy
    μ(t) = (K_σ* * y)(t) / ((K_σ* * 1)(t) + 1e-4) and the density of confidences
    (K_σ* * 1)(t) / N, at the smECE bandwidth σ*. Returns mesh, accuracy, density, sigma, smece."""
    grids, sigma = _bandwidth(p)
    mesh = torch.linspace(0, 1, points, dtype=grids.f.dtype, device=grids.f.device)
    outcome, mass = grids.smoothed(("y", "mass"), sigma, mesh)
    return {
        "mesh": mesh.tolist(),
        "accuracy": (outcome / (mass + DENSITY_EPS)).tolist(),
        "density": (mass / len(p)).tolist(),
        "sigma": sigma,
        "smece": smece(p).item(),
    }


@METRICS.register("smece", binned=False)
def smece(p: Predictions) -> torch.Tensor:
    """Smooth ECE of the top-label confidence (see the module docstring)."""
    grids, sigma = _bandwidth(p)
    return smece_sigma(grids, sigma).float()
