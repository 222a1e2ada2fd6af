"""Brier loss."""

from __future__ import annotations

import torch

from calibexp.losses import terms
from calibexp.losses.base import CalibrationLoss
from calibexp.losses.registry import LOSSES


class Brier(CalibrationLoss):
    r"""L = (1/N) Σ_i Σ_k (p_ik − 1[k = y_i])² (Brier, 1950; as a training loss in Mukhoti et
    al., NeurIPS 2020): sum over classes, mean over the batch. torrvision's ``BrierScore``
    divides by the batch size even where its other losses are summed, so it stays a mean under
    ``train.loss_reduction: sum``."""

    sums_over_batch = False

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return terms.brier(logits, targets).mean()

    def components(self, logits: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        return {**super().components(logits, targets), "brier": terms.brier(logits, targets)}


@LOSSES.register("brier")
def brier() -> Brier:
    return Brier()
