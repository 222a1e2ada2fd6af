"""Binned calibration errors."""

from __future__ import annotations

import torch

from calibexp.metrics.predictions import Predictions
from calibexp.metrics.registry import METRICS


def equal_width_bins(confidence: torch.Tensor, bins: int) -> torch.Tensor:
    """Bin index m of each confidence for bins ((m−1)/M, m/M] (torrvision's convention)."""
    inner = torch.linspace(0, 1, bins + 1, device=confidence.device, dtype=confidence.dtype)[1:-1]
    return torch.bucketize(confidence, inner, right=False)


@METRICS.register("ece")
def ece(p: Predictions, *, bins: int = 15) -> torch.Tensor:
    """Expected calibration error, top-label, M equal-width bins (Guo et al., ICML 2017):

        ECE = Σ_m (|B_m| / N) · |acc(B_m) − conf(B_m)| = (1/N) Σ_m |Σ_{i∈B_m} (acc_i − conf_i)|

    with conf_i = max_k p_ik and bins ((m−1)/M, m/M]. One bucketize and one bincount: O(N log M).
    """
    idx = equal_width_bins(p.confidence, bins)
    # float64 sums: 10^6 float32 additions lose the 1e-6 agreement the metric is tested to.
    gap = torch.bincount(idx, weights=(p.correct - p.confidence).double(), minlength=bins)
    return (gap.abs().sum() / len(p)).float()
