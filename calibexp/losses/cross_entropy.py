"""Cross-entropy."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from calibexp.losses.base import CalibrationLoss
from calibexp.losses.registry import LOSSES


class CrossEntropy(CalibrationLoss):
    r"""CE(z, y) = -log softmax(z)_y, averaged over the batch.

    The seeds' ``wd_ce`` is this loss with weight decay 5e-4 in the optimiser.
    """

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, targets)


@LOSSES.register("ce")
def ce() -> CrossEntropy:
    return CrossEntropy()
