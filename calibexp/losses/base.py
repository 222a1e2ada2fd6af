"""The loss contract every calibration loss follows, so the engine never asks which it holds.

- ``forward(logits[B,K], targets[B]) -> scalar``: the mean over the batch;
- ``components(logits, targets) -> dict[str, Tensor]``: per-sample evidence (focal term, Brier
  term, gate, p_t, ...), logged per epoch as ``evidence/<key>`` (mean over the epoch);
- ``on_epoch_start(epoch)``: for schedules (e.g. a γ that changes with the epoch).
"""

from __future__ import annotations

import torch
from torch import nn


class CalibrationLoss(nn.Module):
    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def components(self, logits: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        return {}

    def on_epoch_start(self, epoch: int) -> None:
        return None
