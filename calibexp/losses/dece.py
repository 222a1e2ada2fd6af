"""Cross-entropy plus the differentiable ECE, as a training loss.

Not meta-calibration: Bohdal, Yang, Hospedales (TMLR 2023; ondrejbohdal/meta-calibration) train
on CE (with meta-learned label smoothing or L2) and use CE + 0.5·DECE only as the meta-objective
on a held-out meta-val split; here DECE of each training batch is added to the loss itself.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from calibexp.errors import require
from calibexp.losses.base import CalibrationLoss
from calibexp.losses.registry import LOSSES
from calibexp.meta.dece import dece as differentiable_ece


class CrossEntropyDECE(CalibrationLoss):
    r"""L = CE + β·DECE(z, y; M, t_a, t_b) (Bohdal et al., TMLR 2023; ``calibexp.meta.dece``).
    β = 0.5 is the weight of the reference's meta-objective CE + 0.5·DECE; here it weighs DECE of
    the training batch in the training loss (calibexp's loss, not meta-calibration)."""

    def __init__(self, beta: float, bins: int, t_a: float, t_b: float) -> None:
        super().__init__()
        self.beta, self.bins, self.t_a, self.t_b = beta, bins, t_a, t_b

    def dece(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return differentiable_ece(logits, targets, self.bins, self.t_a, self.t_b)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, targets) + self.beta * self.dece(logits, targets)

    def components(self, logits: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        return {
            **super().components(logits, targets),
            "ce": F.cross_entropy(logits, targets, reduction="none"),
            "dece": self.dece(logits, targets),
        }


@LOSSES.register("dece")
def dece(
    *, beta: float = 0.5, bins: int = 15, t_a: float = 100.0, t_b: float = 0.01
) -> CrossEntropyDECE:
    require(beta >= 0, "loss.beta", beta, ">= 0")
    require(bins >= 1, "loss.bins", bins, "an integer >= 1")
    require(t_a > 0, "loss.t_a", t_a, "> 0")
    require(t_b > 0, "loss.t_b", t_b, "> 0")
    return CrossEntropyDECE(beta, bins, t_a, t_b)
