"""The progress bar's loss and accuracy, read without making the host wait for the device.

Every refresh starts a non-blocking copy of the running sums into pinned host memory and
records a CUDA event after it; the bar shows a copy once its event has completed
(``Event.query()`` asks, it does not wait). The figures shown are therefore a few steps old
on a GPU and exact on a CPU, where the copy is immediate. Reading the sums directly, as a
``.item()`` every refresh, would stall the GPU at every refresh.
"""

from __future__ import annotations

import torch


class ProgressReadout:
    """Running (loss sum, correct count) → the last completed copy, as (mean loss, accuracy)."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.host = torch.zeros(3, dtype=torch.float64, pin_memory=self.cuda)
        self.view = self.host.numpy()  # made here: reading it later is no tensor operation
        self.pending: torch.cuda.Event | None = None
        self.shown: tuple[float, float] | None = None

    def poll(self, loss_sum: torch.Tensor, correct: torch.Tensor, seen: int) -> tuple | None:
        """Start a copy of the current sums (unless one is still in flight) and return the
        newest completed (mean loss, accuracy), or None before the first completes."""
        if self.pending is not None and self.pending.query():
            self.pending = None
            self._read()
        if self.pending is None:
            with torch.no_grad():
                sums = torch.stack([loss_sum.double(), correct.double()])
                self.host[:2].copy_(sums, non_blocking=self.cuda)
            self.view[2] = seen
            if self.cuda:
                self.pending = torch.cuda.Event()
                self.pending.record()
            else:
                self._read()
        return self.shown

    def _read(self) -> None:
        loss_sum, correct, seen = self.view
        self.shown = (loss_sum / seen, correct / seen)
