"""Meta-learned hyper-parameters (Bohdal, Yang, Hospedales, "Meta-Calibration", TMLR 2023;
ondrejbohdal/meta-calibration ``train.py``, ``train_utils.py``).

A learner holds the hyper-parameters as ``nn.Parameter``s, all starting at 0, and gives the
training loss they define, summed over the batch as the reference sums it:

- ``label_smoothing_scalar``: one ε for every class; target (1 − ε)e_y + ε/K, ε ∈ [0, 0.5].
- ``label_smoothing_vector``: ε_y per class (and per domain with ``meta.per_domain``, the
  multi-domain variant's one vector per training domain); target (1 − ε_y)e_y + ε_y/K,
  ε ∈ [0, 0.5].
- ``label_smoothing_nonuniform`` (the reference's README default): A (K×K, ≥ 0) and ε (K, in
  [0, 0.5]); Ā = A ⊙ (1 − I) / (Σ_j (A ⊙ (1 − I))_j + 1e-6) row-wise; target
  (1 − ε_y)e_y + ε_y Ā_y. While A = 0 the targets sum to 1 − ε_y, as in the reference.
- ``l2_head``: one coefficient per element of the final layer's weight and bias; the loss is
  the configured training loss (summed) plus Σ reg ⊙ θ²; never clamped (it may turn negative,
  as the reference's does).

The label-smoothing learners train on their soft-target CE, L = Σ_i Σ_k −t_ik log softmax(z_i)_k,
and ignore ``loss`` (the reference ignores ``--loss`` for them too).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from calibexp.losses.terms import one_hot
from calibexp.registry import Registry

META_LEARNERS = Registry("meta-learner")
EPS_MAX = 0.5  # the reference clamps every label-smoothing ε to [0, 0.5]
ROW_FLOOR = 1e-6  # added to Ā's row sums, as the reference does

# The configured training loss summed over the batch, for the learners that add to it.
BaseLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def soft_cross_entropy_sum(logits: torch.Tensor, soft_targets: torch.Tensor) -> torch.Tensor:
    """Σ_i Σ_k −t_ik log softmax(z_i)_k (the reference's ``soft_cross_entropy``)."""
    return -(soft_targets * F.log_softmax(logits, dim=1)).sum()


def smoothed_cross_entropy_sum(
    logits: torch.Tensor,
    targets: torch.Tensor,
    eps_y: torch.Tensor,
    spread_y: torch.Tensor | None = None,
) -> torch.Tensor:
    """The soft-target CE of target (1 − ε_y)e_y + ε_y·s_y, with s_y the row ``spread_y``
    (non-uniform) or uniform 1/K."""
    target = one_hot(targets, logits.shape[1], logits.dtype)
    away = eps_y / logits.shape[1] if spread_y is None else eps_y * spread_y
    return soft_cross_entropy_sum(logits, target * (1 - eps_y) + away)


class MetaLearner(nn.Module):
    """Hyper-parameters learned through the meta-objective, and the training loss they define."""

    def forward(
        self,
        logits: torch.Tensor,
        targets: torch.Tensor,
        domains: torch.Tensor | None,
        head: Sequence[torch.Tensor],
        base_loss: BaseLoss,
    ) -> torch.Tensor:
        """The training loss summed over the batch under the hyper-parameters; ``head`` is the
        final layer's (weight, bias), ``domains`` each sample's domain or None. The forward,
        so that ``torch.func.functional_call`` can evaluate it at other values of them."""
        raise NotImplementedError

    def clamp_(self) -> None:
        """Project the hyper-parameters back into their range after a meta step."""

    def summary(self) -> dict[str, torch.Tensor]:
        """Scalars logged every epoch as ``meta/<key>``."""
        raise NotImplementedError

    def learned(self) -> dict[str, np.ndarray]:
        """The learned values, logged as ``meta/learned.npz`` with every checkpoint."""
        return {name: p.detach().cpu().numpy() for name, p in self.named_parameters()}


def eps_summary(eps: torch.Tensor) -> dict[str, torch.Tensor]:
    eps = eps.detach()
    return {"eps_mean": eps.mean(), "eps_min": eps.min(), "eps_max": eps.max()}


class ScalarLabelSmoothing(MetaLearner):
    def __init__(self) -> None:
        super().__init__()
        self.eps = nn.Parameter(torch.zeros(()))

    def forward(self, logits, targets, domains, head, base_loss):  # noqa: ANN001, ANN201
        return smoothed_cross_entropy_sum(logits, targets, self.eps)

    def clamp_(self) -> None:
        self.eps.data.clamp_(0.0, EPS_MAX)

    def summary(self) -> dict[str, torch.Tensor]:
        return eps_summary(self.eps)


class VectorLabelSmoothing(MetaLearner):
    """ε [D, K]: one class-wise vector per seen domain (D = 1 unless ``meta.per_domain``);
    ``domains`` are then each sample's row."""

    def __init__(self, num_classes: int, num_domains: int) -> None:
        super().__init__()
        self.eps = nn.Parameter(torch.zeros(num_domains, num_classes))

    def forward(self, logits, targets, domains, head, base_loss):  # noqa: ANN001, ANN201
        rows = domains if len(self.eps) > 1 else torch.zeros_like(targets)
        return smoothed_cross_entropy_sum(logits, targets, self.eps[rows, targets][:, None])

    def clamp_(self) -> None:
        self.eps.data.clamp_(0.0, EPS_MAX)

    def summary(self) -> dict[str, torch.Tensor]:
        return eps_summary(self.eps)


class NonUniformLabelSmoothing(MetaLearner):
    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.spread = nn.Parameter(torch.zeros(num_classes, num_classes))  # A
        self.eps = nn.Parameter(torch.zeros(num_classes))

    def spread_rows(self) -> torch.Tensor:
        """Ā = A ⊙ (1 − I), each row divided by its sum + 1e-6: where class y's ε goes."""
        off = self.spread * (1 - torch.eye(self.num_classes, device=self.spread.device))
        return off / (off.sum(dim=1, keepdim=True) + ROW_FLOOR)

    def forward(self, logits, targets, domains, head, base_loss):  # noqa: ANN001, ANN201
        eps_y = self.eps[targets][:, None]
        return smoothed_cross_entropy_sum(logits, targets, eps_y, self.spread_rows()[targets])

    def clamp_(self) -> None:
        self.spread.data.clamp_(min=0.0)
        self.eps.data.clamp_(0.0, EPS_MAX)

    def summary(self) -> dict[str, torch.Tensor]:
        return {**eps_summary(self.eps), "spread_max": self.spread.detach().max()}

    def learned(self) -> dict[str, np.ndarray]:
        return {**super().learned(), "spread_rows": self.spread_rows().detach().cpu().numpy()}


class HeadL2(MetaLearner):
    """reg_W [K, F] and reg_b [K]: the penalty Σ reg ⊙ θ² on the final layer."""

    def __init__(self, head_shapes: Sequence[torch.Size]) -> None:
        super().__init__()
        self.reg = nn.ParameterList(nn.Parameter(torch.zeros(shape)) for shape in head_shapes)

    def forward(self, logits, targets, domains, head, base_loss):  # noqa: ANN001, ANN201
        penalty = sum((r * p.pow(2)).sum() for r, p in zip(self.reg, head))
        return base_loss(logits, targets) + penalty

    def summary(self) -> dict[str, torch.Tensor]:
        weight, bias = (r.detach() for r in self.reg)
        return {
            "l2_weight_mean": weight.mean(),
            "l2_weight_norm": weight.norm(),
            "l2_bias_mean": bias.mean(),
            "l2_bias_norm": bias.norm(),
        }

    def learned(self) -> dict[str, np.ndarray]:
        weight, bias = (r.detach().cpu().numpy() for r in self.reg)
        return {"reg_weight": weight, "reg_bias": bias}


# Builders: (num_classes, head parameter shapes, number of domains), from the data and model.
@META_LEARNERS.register("label_smoothing_scalar")
def label_smoothing_scalar(num_classes: int, head_shapes, num_domains: int) -> MetaLearner:  # noqa: ANN001
    return ScalarLabelSmoothing()


@META_LEARNERS.register("label_smoothing_vector", per_domain=True)
def label_smoothing_vector(num_classes: int, head_shapes, num_domains: int) -> MetaLearner:  # noqa: ANN001
    return VectorLabelSmoothing(num_classes, num_domains)


@META_LEARNERS.register("label_smoothing_nonuniform")
def label_smoothing_nonuniform(num_classes: int, head_shapes, num_domains: int) -> MetaLearner:  # noqa: ANN001
    return NonUniformLabelSmoothing(num_classes)


@META_LEARNERS.register("l2_head", adds_to_loss=True)
def l2_head(num_classes: int, head_shapes, num_domains: int) -> MetaLearner:  # noqa: ANN001
    return HeadL2(head_shapes)
