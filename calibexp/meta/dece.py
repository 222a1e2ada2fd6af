"""DECE: a differentiable expected calibration error (Bohdal, Yang, Hospedales,
"Meta-Calibration: Learning of Model Calibration Using Differentiable Expected Calibration
Error", TMLR 2023)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

SMOOTHING = 1e-6  # added to every soft bin membership, as the reference does


def soft_bins(conf: torch.Tensor, bins: int, t_b: float) -> torch.Tensor:
    """o_im = softmax_m((w_m · conf_i + b_m) / t_b), w = (1, …, M), b_m = −Σ_{j≤m} c_j with cut
    points c = (0, 1/M, …, (M−1)/M) (the DNDT construction): a soft one-hot over M equal-width
    bins that becomes bin ((m−1)/M, m/M] as t_b → 0. Smoothed by ε and renormalised by
    1 + (M + 1)ε, as the reference does."""
    cuts = torch.linspace(0, 1, bins + 1, dtype=conf.dtype, device=conf.device)[:-1]
    weights = torch.arange(1, bins + 1, dtype=conf.dtype, device=conf.device)
    h = (conf[:, None] * weights[None, :] - torch.cumsum(cuts, 0)[None, :]) / t_b
    return (F.softmax(h, dim=1) + SMOOTHING) / (1.0 + (bins + 1) * SMOOTHING)


def soft_accuracy(probs: torch.Tensor, targets: torch.Tensor, t_a: float) -> torch.Tensor:
    """a_i = max(0, 2 − rank_i), rank_i = 1 + Σ_{k≠y_i} σ(t_a (p_ik − p_iy_i)): 1 when y_i is the
    arg-max by a margin, 0 when another class is, as t_a → ∞ (all-pairs soft ranking)."""
    p_y = probs.gather(1, targets[:, None])
    rank = torch.sigmoid(t_a * (probs - p_y)).sum(dim=1) + 0.5  # k = y contributes σ(0) = 0.5
    return F.relu(2.0 - rank)


def dece(
    logits: torch.Tensor,
    targets: torch.Tensor,
    bins: int = 15,
    t_a: float = 100.0,
    t_b: float = 0.01,
) -> torch.Tensor:
    r"""DECE = Σ_m (Σ_i o_im / N) · |acc_m − conf_m|, with soft bin memberships o (``soft_bins``),
    acc_m = Σ_i o_im a_i / Σ_i o_im over soft accuracies a (``soft_accuracy``) and
    conf_m = Σ_i o_im conf_i / Σ_i o_im. Tends to the hard 15-bin ECE as t_b → 0, t_a → ∞."""
    probs = F.softmax(logits, dim=1)
    conf = probs.max(dim=1).values
    o = soft_bins(conf, bins, t_b)
    mass = o.sum(dim=0)
    bin_conf = (o * conf[:, None]).sum(dim=0) / mass
    bin_acc = (o * soft_accuracy(probs, targets, t_a)[:, None]).sum(dim=0) / mass
    return (mass * (bin_acc - bin_conf).abs()).sum() / len(targets)
