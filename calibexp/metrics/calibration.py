"""Binned calibration errors."""

from __future__ import annotations

from typing import Literal

import torch

from calibexp.metrics.predictions import Predictions
from calibexp.metrics.registry import METRICS

# Which end of a bin is closed: right = ((m-1)/M, m/M] (torrvision), left = [(m-1)/M, m/M)
# plus a bin of its own for 1.0 (torchmetrics).
BinEdges = Literal["right", "left"]


def equal_width_bins(
    confidence: torch.Tensor, bins: int, closed: BinEdges = "right"
) -> torch.Tensor:
    """Bin index of each confidence for M equal-width bins.

    ``closed="right"``: bins ((m−1)/M, m/M], indices 0..M−1 (torrvision's ``ECELoss``, the
    convention of the published numbers calibexp reproduces; a confidence of exactly 0 lands in
    bin 0 here and callers that follow torrvision drop it). ``closed="left"``: bins
    [(m−1)/M, m/M) plus a bin M of its own for confidence exactly 1.0 (torchmetrics'
    ``_binning_bucketize``). The two differ only for confidences exactly on an edge."""
    edges = torch.linspace(0, 1, bins + 1, device=confidence.device, dtype=confidence.dtype)
    if closed == "right":
        return torch.bucketize(confidence, edges[1:-1], right=False)
    if closed == "left":
        return torch.bucketize(confidence, edges[1:], right=True)
    raise ValueError(f"closed must be 'right' or 'left', got {closed!r}")


@METRICS.register("ece", binned=True)
def ece(p: Predictions, *, bins: int = 15, closed: BinEdges = "right") -> torch.Tensor:
    """Expected calibration error, top-label, M equal-width bins (Guo et al., ICML 2017):

        ECE = Σ_m (|B_m| / N) · |acc(B_m) − conf(B_m)| = (1/N) Σ_m |Σ_{i∈B_m} (acc_i − conf_i)|

    with conf_i = max_k p_ik and bins ((m−1)/M, m/M] (``closed="left"`` gives torchmetrics'
    [lo, hi) bins, see ``equal_width_bins``). One bucketize and one bincount: O(N log M).
    """
    gap, _ = _bin_gaps(p, bins, closed)
    return (gap.abs().sum() / len(p)).float()


def _bin_gaps(
    p: Predictions, bins: int, closed: BinEdges = "right"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per equal-width bin: Σ_{i∈B_m}(acc_i − conf_i) and |B_m|, computed once per suite. Summed
    in float64: 10^6 float32 additions lose the 1e-6 agreement these metrics are tested to."""

    def compute() -> tuple[torch.Tensor, torch.Tensor]:
        idx = equal_width_bins(p.confidence, bins, closed)
        gap = torch.bincount(idx, weights=(p.correct - p.confidence).double(), minlength=bins)
        return gap, torch.bincount(idx, minlength=bins).double()

    return p.memo(("equal_width_gaps", bins, closed), compute)


@METRICS.register("mce", binned=True)
def mce(p: Predictions, *, bins: int = 15) -> torch.Tensor:
    """Maximum calibration error: max_m |acc(B_m) − conf(B_m)| over non-empty equal-width bins
    (Naeini et al., AAAI 2015; torrvision's ``MCE``)."""
    gap, count = _bin_gaps(p, bins)
    return (gap.abs() / count.clamp(min=1)).max().float()


@METRICS.register("ece_over", binned=True)
def ece_over(p: Predictions, *, bins: int = 15) -> torch.Tensor:
    """The part of ECE from over-confident bins (conf(B_m) > acc(B_m)); with ``ece_under`` it
    sums to ECE."""
    gap, _ = _bin_gaps(p, bins)
    return (gap.clamp(max=0).abs().sum() / len(p)).float()


@METRICS.register("ece_under", binned=True)
def ece_under(p: Predictions, *, bins: int = 15) -> torch.Tensor:
    """The part of ECE from under-confident bins (conf(B_m) < acc(B_m))."""
    gap, _ = _bin_gaps(p, bins)
    return (gap.clamp(min=0).sum() / len(p)).float()


@METRICS.register("adaece", binned=True)
def adaptive_ece(p: Predictions, *, bins: int = 15) -> torch.Tensor:
    """Adaptive ECE: ECE over M equal-mass bins (Nguyen & O'Connor, EMNLP 2015; Mukhoti et al.,
    NeurIPS 2020). Edges follow torrvision: the (N·m/M)-th order statistics of the confidences,
    linearly interpolated (``np.interp(linspace(0, N, M+1), arange(N), sort(conf))``), with
    membership (lo, hi], so the single smallest confidence falls in no bin. One sort: O(N log N).
    """
    conf = p.confidence.double()
    n = len(conf)
    ordered = conf[p.order]
    position = torch.linspace(0, n, bins + 1, dtype=torch.float64, device=conf.device).clamp(
        max=n - 1
    )
    low = position.floor().long()
    high = (low + 1).clamp(max=n - 1)
    edges = ordered[low] + (position - low) * (ordered[high] - ordered[low])
    idx = torch.bucketize(conf, edges, right=False) - 1  # edges[m] < conf <= edges[m+1] -> m
    inside = (idx >= 0) & (idx < bins)
    gap = torch.bincount(idx[inside], weights=(p.correct.double() - conf)[inside], minlength=bins)
    return (gap.abs().sum() / n).float()


@METRICS.register("classece", binned=True)
def classwise_ece(p: Predictions, *, bins: int = 15) -> torch.Tensor:
    """Classwise ECE (Kull et al., NeurIPS 2019; torrvision's ``ClasswiseECELoss``): for every
    class k, equal-width bins ((m−1)/M, m/M] over p_·k of all N samples, the bin's accuracy the
    fraction with y = k; the per-class ECEs averaged:
    (1/K) Σ_k Σ_m (1/N) |Σ_{i∈B_mk} (1[y_i = k] − p_ik)|. Two bincounts: O(N·K log M)."""
    probs = p.probs
    n, k = probs.shape
    dump = k * bins  # cell of p_ik = 0: in no bin, as torrvision's (lo, hi] has it
    offset = bins * torch.arange(k, device=probs.device)
    # Σ_{i∈B_mk} 1[y_i = k] counts the samples whose own-class probability p_{i,y_i} fell in cell
    # (m, k): N cells to bin, not an N×K one-hot.
    p_y = probs.gather(1, p.targets[:, None]).squeeze(1)
    own = torch.where(p_y > 0, equal_width_bins(p_y, bins) + offset[p.targets], dump)
    hits = torch.bincount(own, minlength=dump + 1)[:dump].double()
    # Σ_{i∈B_mk} p_ik: at most M−1 probabilities of a row exceed 1/M, so only those are binned;
    # bin 0 of class k gets the rest of its column sum. Binning all N·K (10^7 at N = 10^5,
    # K = 100) costs 3-5x more.
    first_edge = torch.linspace(0, 1, bins + 1, dtype=probs.dtype, device=probs.device)[1]
    rows, cols = (probs > first_edge).nonzero(as_tuple=True)
    upper = probs[rows, cols]
    mass = torch.bincount(
        equal_width_bins(upper, bins) + offset[cols], weights=upper.double(), minlength=dump
    ).double()  # bincount of nothing (all-NaN probabilities) comes back as int64
    mass[offset] += probs.sum(dim=0).double() - mass.view(k, bins).sum(dim=1)
    gap = hits - mass
    return (gap.abs().sum() / (n * k)).float()


@METRICS.register("conf", binned=False)
def mean_confidence(p: Predictions) -> torch.Tensor:
    """Mean top-label confidence (1/N) Σ_i max_k p_ik; with ``acc`` it shows over-confidence."""
    return p.confidence.mean()
