"""Cross-entropy and label smoothing."""

from __future__ import annotations

import typing
from typing import Literal

import torch
import torch.nn.functional as F

from calibexp.errors import require
from calibexp.losses.base import CalibrationLoss
from calibexp.losses.registry import LOSSES

# How label smoothing spreads ε: over all K classes (ε/K each) or over the K − 1 others.
Spread = Literal["all", "others"]


class CrossEntropy(CalibrationLoss):
    r"""CE(z, y) = −log softmax(z)_y, averaged over the batch.

    The SA-FCL repository's ``wd_ce`` is this loss with weight decay 5e-4 in the optimiser (a
    config, not a loss: ``configs/<dataset>/<model>/wd_ce.yaml``).
    """

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, targets)


class LabelSmoothing(CalibrationLoss):
    r"""Cross-entropy against a smoothed target q: L = −Σ_k q_k log p_k, mean over the batch.

    ``spread: all`` (Szegedy et al., CVPR 2016; Müller et al., NeurIPS 2019; PyTorch's
    ``label_smoothing``): q = (1 − ε)·e_y + ε/K.
    ``spread: others`` (the SA-FCL repository): q_y = 1 − ε and ε/(K − 1) on every other class.
    Mukhoti et al. 2020 report LS-0.05 without released code, so which one they used is open.
    """

    def __init__(self, smoothing: float, spread: Spread) -> None:
        super().__init__()
        self.smoothing = smoothing
        self.spread = spread

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        k = logits.shape[1]
        eps = self.smoothing
        log_p = F.log_softmax(logits, dim=1)
        off = eps / k if self.spread == "all" else eps / (k - 1)
        on = 1 - eps + off if self.spread == "all" else 1 - eps
        target = torch.full_like(log_p, off).scatter_(1, targets[:, None], on)
        return -(target * log_p).sum(dim=1).mean()


@LOSSES.register("ce")
def ce() -> CrossEntropy:
    return CrossEntropy()


@LOSSES.register("label_smoothing")
def label_smoothing(*, smoothing: float = 0.05, spread: Spread = "all") -> LabelSmoothing:
    require(0 <= smoothing < 1, "loss.smoothing", smoothing, "a value in [0, 1)")
    require(
        spread in typing.get_args(Spread), "loss.spread", spread, "all (ε/K) | others (ε/(K−1))"
    )
    return LabelSmoothing(smoothing, spread)
