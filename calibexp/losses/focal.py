"""Focal losses: fixed γ, sample-dependent γ (FLSD), and dual focal."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from calibexp.errors import require
from calibexp.losses import terms
from calibexp.losses.base import CalibrationLoss
from calibexp.losses.registry import LOSSES


class Focal(CalibrationLoss):
    r"""FL_γ(z, y) = −(1 − p_t)^γ · log p_t, mean over the batch (Lin et al., ICCV 2017; as a
    calibration loss: Mukhoti et al., "Calibrating Deep Neural Networks using Focal Loss",
    NeurIPS 2020). No α-balancing; γ = 0 is cross-entropy. FL-3 means γ = 3."""

    def __init__(self, gamma: float) -> None:
        super().__init__()
        self.gamma = gamma

    def sample_gamma(self, log_p: torch.Tensor) -> float | torch.Tensor:
        return self.gamma

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        log_p = terms.log_pt(logits, targets)
        return terms.focal(log_p, self.sample_gamma(log_p)).mean()

    def components(self, logits: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        log_p = terms.log_pt(logits, targets)
        gamma = self.sample_gamma(log_p)
        return {
            "p_t": log_p.exp(),
            "focal": terms.focal(log_p, gamma),
            # a float γ filled on the device: a tensor made from the host value would be a
            # blocking host-to-device copy every step on CUDA
            "gamma": gamma if isinstance(gamma, torch.Tensor) else log_p.new_full((), gamma),
        }


class SampleDependentFocal(Focal):
    r"""FLSD (Mukhoti et al., NeurIPS 2020, §5): focal loss whose γ is picked per sample from
    p_t. With thresholds (τ_1 < … < τ_m) and γ's (γ_0, …, γ_m), γ = γ_j for τ_j ≤ p_t < τ_{j+1}.
    FLSD-53 is thresholds (0.2, 0.5), γ's (5, 3, 3): γ = 5 if p_t < 0.2, else 3 (torrvision's
    ``FocalLossAdaptive`` with ``--gamma 3``; "FLSD-532" is γ's (5, 3, 2)). γ is a step function
    of the detached p_t, so it carries no gradient; chosen with one ``bucketize``, not a loop."""

    def __init__(self, thresholds: list[float], gammas: list[float]) -> None:
        super().__init__(gamma=0.0)
        self.register_buffer("thresholds", torch.tensor(thresholds, dtype=torch.float64))
        self.register_buffer("gammas", torch.tensor(gammas, dtype=torch.float64))

    def sample_gamma(self, log_p: torch.Tensor) -> torch.Tensor:
        p_t = log_p.detach().exp().to(self.thresholds.dtype)
        return self.gammas[torch.bucketize(p_t, self.thresholds, right=True)].to(log_p.dtype)


def next_below(probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """p_j = max{p_k : p_k < p_y}, the largest probability strictly below the true class's, or 0
    when there is none (p_y is the smallest). Not the top competitor when y is not the arg-max."""
    p_y = probs.gather(1, targets[:, None])
    return torch.where(probs < p_y, probs, torch.zeros_like(probs)).max(dim=1).values


class DualFocal(CalibrationLoss):
    r"""L_DFL = −(1 − p_y + p_j)^γ · log p_y, p_j = max{p_k : p_k < p_y} (0 if none), mean over
    the batch (Tao, Dong, Xu, "Dual Focal Loss for Calibration", ICML 2023). p_j is not detached:
    the gradient also pushes the runner-up below p_y down."""

    def __init__(self, gamma: float) -> None:
        super().__init__()
        self.gamma = gamma

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self._per_sample(logits, targets).mean()

    def _per_sample(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits, dim=1)
        log_py = log_p.gather(1, targets[:, None]).squeeze(1)
        base = terms.one_minus(log_py) + next_below(log_p.exp(), targets)
        return -base.pow(self.gamma) * log_py

    def components(self, logits: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        probs = F.softmax(logits, dim=1)
        return {
            **super().components(logits, targets),
            "p_j": next_below(probs, targets),
            "dual_focal": self._per_sample(logits, targets),
        }


def _gamma_ok(gamma: float, key: str = "loss.gamma") -> None:
    require(gamma >= 0, key, gamma, ">= 0 (0 is cross-entropy)")


@LOSSES.register("focal")
def focal(*, gamma: float = 3.0) -> Focal:
    _gamma_ok(gamma)
    return Focal(gamma)


@LOSSES.register("flsd53")
def flsd53(
    *,
    thresholds: list[float] = [0.2, 0.5],  # noqa: B006 - copied into the config schema
    gammas: list[float] = [5.0, 3.0, 3.0],  # noqa: B006
) -> SampleDependentFocal:
    ordered = list(thresholds) == sorted(set(thresholds)) and all(0 < t < 1 for t in thresholds)
    require(ordered, "loss.thresholds", list(thresholds), "strictly increasing values in (0, 1)")
    require(
        len(gammas) == len(thresholds) + 1,
        "loss.gammas",
        list(gammas),
        f"{len(thresholds) + 1} values, one more than loss.thresholds",
    )
    for g in gammas:
        _gamma_ok(g, "loss.gammas")
    return SampleDependentFocal(list(thresholds), list(gammas))


@LOSSES.register("dual_focal")
def dual_focal(*, gamma: float = 5.0) -> DualFocal:
    """γ per setting from the paper's table (C10: ResNet-50 5, ResNet-110 4.5, WRN-26-10 2.6,
    DenseNet-121 5; C100: 5, 6.1, 3.9, 3.4; Tiny-ImageNet ResNet-50 2.3)."""
    _gamma_ok(gamma)
    return DualFocal(gamma)
