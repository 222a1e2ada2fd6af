"""Per-sample pieces the calibration losses are built from (and log as evidence).

All take float logits z [B, K] and targets y [B] and return a tensor [B]. Notation:
p = softmax(z), p_t = p_y (the target's probability, as in Lin et al., ICCV 2017).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def log_pt(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p_t, from log-softmax (finite even when p_t underflows to 0)."""
    return F.log_softmax(logits, dim=1).gather(1, targets[:, None]).squeeze(1)


def one_hot(targets: torch.Tensor, classes: int, dtype: torch.dtype) -> torch.Tensor:
    """e_y as rows [B, K] of ``dtype``, by comparison with ``arange``: no range check, so no
    read of the labels back to the host on any device (``F.one_hot`` reads their min and max on
    a CPU, which the CPU stand-in of ``train.check_syncs`` refuses; on CUDA it relies on
    device asserts)."""
    return (targets[:, None] == torch.arange(classes, device=targets.device)).to(dtype)


def one_minus(log_p: torch.Tensor) -> torch.Tensor:
    """1 − p computed as −expm1(log p): exact near p = 1, where 1 − exp(log p) cancels.

    Clamped at the smallest positive float: where p rounds to exactly 1 (log p = 0) every term
    that uses it is multiplied by log p = 0 anyway, and (1 − p)^γ with 0 < γ < 1 would otherwise
    give an infinite derivative times zero, i.e. NaN.
    """
    return (-torch.expm1(log_p)).clamp(min=torch.finfo(log_p.dtype).tiny)


def focal(log_p: torch.Tensor, gamma: float | torch.Tensor) -> torch.Tensor:
    """FL_γ = −(1 − p_t)^γ · log p_t (Lin et al., ICCV 2017); γ may be per sample."""
    return -one_minus(log_p).pow(gamma) * log_p


def brier(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """‖p − e_y‖²₂ = Σ_k (p_k − 1[k = y])², a sum over classes, in [0, 2]."""
    probs = F.softmax(logits, dim=1)
    onehot = one_hot(targets, logits.shape[1], probs.dtype)
    return (probs - onehot).pow(2).sum(dim=1)
