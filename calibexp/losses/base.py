"""The loss contract every calibration loss follows, so the engine never asks which it holds.

- ``forward(logits[B,K], targets[B]) -> scalar``: the mean over the batch. torrvision sums its
  losses over the batch (``train.loss_reduction: sum``, part of ``protocol: torrvision``): the
  engine then steps on B times the mean, except for a loss with ``sums_over_batch = False``
  (Brier, which torrvision's ``BrierScore`` averages in either mode);
- ``components(logits, targets) -> dict[str, Tensor]``: the evidence of why the loss calibrates
  (focal term, Brier term, gate w, w·Brier, p_t, …), per sample [B] or per batch [];
  logged per epoch as ``evidence/<key>``, the sample-weighted mean over the epoch;
- ``diagnostics(logits, targets) -> dict[str, Tensor]``: measurements that need autograd
  (the gate-gradient norm), taken on the first batch of every epoch;
- ``on_epoch_start(epoch)``: for schedules (e.g. a γ that changes with the epoch); keep a
  value that changes in a buffer tensor (updated in place), not a Python number, or a
  compiled step (``train.compile``) is specialised on it and recompiled every epoch.

Nothing here may read a value back to the host (``.item()``, ``if`` on a tensor, a boolean
mask) or make a tensor from host data in every step: the step loop never waits on the device
(``train.check_syncs``; every registered loss is held to it in the tests).
"""

from __future__ import annotations

import torch
from torch import nn

from calibexp.losses.terms import log_pt


class CalibrationLoss(nn.Module):
    # Whether train.loss_reduction: sum multiplies this loss by the batch size, as the
    # references' summed form of it does.
    sums_over_batch = True

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def components(self, logits: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"p_t": log_pt(logits, targets).exp()}

    def diagnostics(self, logits: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        return {}

    def on_epoch_start(self, epoch: int) -> None:
        return None
