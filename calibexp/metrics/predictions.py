"""A view of one split's predictions that every metric reads from.

Metrics are pure functions of ``(logits [N, K] float32, targets [N])``; this class computes the
shared pieces (log-softmax, confidence, arg-max, correctness) once per suite instead of once per
metric, on whatever device the logits are on.
"""

from __future__ import annotations

from functools import cached_property

import torch

from calibexp.errors import CalibexpError


class Predictions:
    def __init__(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
        if logits.ndim != 2 or targets.ndim != 1 or len(logits) != len(targets):
            raise CalibexpError(
                f"predictions need logits [N, K] and targets [N]; got {tuple(logits.shape)} "
                f"and {tuple(targets.shape)}"
            )
        # Metrics always see float32: bf16 cannot tell 0.999 from 1.0, which biases ECE and NLL.
        self.logits = logits.float()
        self.targets = targets.long()

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def num_classes(self) -> int:
        return int(self.logits.shape[1])

    @cached_property
    def log_probs(self) -> torch.Tensor:
        return torch.log_softmax(self.logits, dim=1)

    @cached_property
    def probs(self) -> torch.Tensor:
        return self.log_probs.exp()

    @cached_property
    def confidence(self) -> torch.Tensor:
        return self.probs.max(dim=1).values

    @cached_property
    def predicted(self) -> torch.Tensor:
        return self.logits.argmax(dim=1)

    @cached_property
    def correct(self) -> torch.Tensor:
        return (self.predicted == self.targets).float()

    def scaled(self, temperature: float) -> "Predictions":
        return Predictions(self.logits / temperature, self.targets)
