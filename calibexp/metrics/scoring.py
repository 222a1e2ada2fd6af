"""Proper scores and accuracy."""

from __future__ import annotations

import torch

from calibexp.metrics.predictions import Predictions
from calibexp.metrics.registry import METRICS


@METRICS.register("acc", binned=False)
def accuracy(p: Predictions) -> torch.Tensor:
    """Top-1 accuracy: (1/N) Σ_i 1[argmax_k z_ik = y_i]."""
    return p.correct.mean()


@METRICS.register("nll", binned=False)
def nll(p: Predictions) -> torch.Tensor:
    """Negative log-likelihood: -(1/N) Σ_i log softmax(z_i)_{y_i} (natural log)."""
    return -p.target_log_prob.mean()


@METRICS.register("brier", binned=False)
def brier(p: Predictions) -> torch.Tensor:
    """Brier score: (1/N) Σ_i Σ_k (p_ik − 1[k = y_i])², in [0, 2] (sum over classes, mean over
    samples, as torrvision, meta-calibration and SA-FCL report it; Brier 1950)."""
    # Σ_k (p_k − 1[k=y])² = ‖p‖² − 2 p_y + 1: no one-hot; the norm is one fused pass.
    p_y = p.probs.gather(1, p.targets[:, None]).squeeze(1)
    return (torch.linalg.vector_norm(p.probs, dim=1).square() - 2 * p_y + 1).mean()
