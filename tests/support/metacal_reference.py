"""A written-out transcription of one training step of ondrejbohdal/meta-calibration
(``train_utils.train_single_epoch`` with ``--meta_calibration`` set, ``loss_mean=False``), in
its own structure: a final layer that uses "fast" weights when they are set (``Net/resnet.py``
``Linear_fw``), soft labels built class by class (``create_class_smooth_labels``,
``create_non_uniform_smooth_labels``), the summed soft cross-entropy, the look-ahead with
``autograd.grad(create_graph=True)``, the meta step with ``backward(retain_graph=True)`` and the
clamps, then the model's step with nothing zeroing its gradients in between. The test oracle for
calibexp.meta.step.MetaStep; written from reading the reference, not imported from it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from calibexp.meta.dece import dece  # checked against its own oracle in tests/losses


class FastLinear(nn.Linear):
    """``Linear_fw``: the adapted ``weight.fast`` / ``bias.fast`` when both are set."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__(in_features, out_features)
        self.weight.fast = None
        self.bias.fast = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight.fast is not None and self.bias.fast is not None:
            return F.linear(x, self.weight.fast, self.bias.fast)
        return super().forward(x)


class TinyNet(nn.Module):
    """Linear → BatchNorm → tanh → final layer: small enough for float64 finite differences,
    with BatchNorm so the meta-val batch's statistics matter."""

    def __init__(self, features: int = 5, hidden: int = 8, classes: int = 4, fast: bool = False):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(features, hidden), nn.BatchNorm1d(hidden), nn.Tanh())
        self.fc = (FastLinear if fast else nn.Linear)(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x))


def one_hot(labels: torch.Tensor, depth: int) -> torch.Tensor:
    encoded = torch.zeros(len(labels), depth, dtype=torch.float64)
    return encoded.scatter_(1, labels.view(-1, 1), 1)


def class_smooth_labels(labels: torch.Tensor, eps: torch.Tensor, k: int) -> torch.Tensor:
    rows = []
    for target in labels:
        row = torch.zeros(k, dtype=torch.float64)
        row[target] = 1.0 - eps[target]
        row = row + eps[target] / k
        rows.append(row)
    return torch.stack(rows)


def non_uniform_smooth_labels(
    labels: torch.Tensor, spread: torch.Tensor, eps: torch.Tensor, k: int
) -> torch.Tensor:
    off_diagonal = spread * (1.0 - torch.eye(k, dtype=torch.float64))
    normalised = off_diagonal / (off_diagonal.sum(dim=1).unsqueeze(1) + 1e-6)
    targets = torch.zeros(len(labels), k, dtype=torch.float64)
    for c in range(k):
        row = torch.zeros(k, dtype=torch.float64)
        row[c] = row[c] + 1.0 - eps[c]
        row = row + normalised[c] * eps[c]
        targets[labels == c] = row
    return targets


def soft_cross_entropy(logits: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    return torch.sum(torch.sum(-soft * F.log_softmax(logits, dim=1), 1))


def training_loss(kind: str, logits, labels, hyper, fc) -> torch.Tensor:  # noqa: ANN001
    """``calculate_loss`` for each ``--meta_calibration`` kind, with ``--loss cross_entropy``."""
    k = logits.shape[1]
    if kind == "scalar_label_smoothing":
        soft = one_hot(labels, k) * (1.0 - hyper[-1]) + hyper[-1] / k
        return soft_cross_entropy(logits, soft)
    if kind == "vector_label_smoothing":
        return soft_cross_entropy(logits, class_smooth_labels(labels, hyper[-1], k))
    if kind == "non_uniform_label_smoothing":
        return soft_cross_entropy(logits, non_uniform_smooth_labels(labels, *hyper, k))
    assert kind == "learnable_l2"
    loss = F.cross_entropy(logits, labels, reduction="sum")
    for param, reg in zip(fc.parameters(), hyper):
        loss = loss + torch.sum(reg * param**2)
    return loss


def initial_hyper(kind: str, fc: nn.Linear, k: int) -> list[nn.Parameter]:
    """``train.py``: every learned hyper-parameter starts at zero."""
    if kind == "learnable_l2":
        return [nn.Parameter(torch.zeros_like(p)) for p in fc.parameters()]
    if kind == "scalar_label_smoothing":
        return [nn.Parameter(torch.tensor(0.0, dtype=torch.float64))]
    if kind == "vector_label_smoothing":
        return [nn.Parameter(torch.zeros(k, dtype=torch.float64))]
    return [
        nn.Parameter(torch.zeros(k, k, dtype=torch.float64)),
        nn.Parameter(torch.zeros(k, dtype=torch.float64)),
    ]


def clamp(kind: str, hyper: list[nn.Parameter]) -> None:
    if kind in ("scalar_label_smoothing", "vector_label_smoothing"):
        hyper[0].data = torch.clamp(hyper[0], min=0.0, max=0.5).data
    elif kind == "non_uniform_label_smoothing":
        hyper[0].data = torch.clamp(hyper[0], min=0.0).data
        hyper[1].data = torch.clamp(hyper[1], min=0.0, max=0.5).data


def reference_step(
    kind: str,
    model: TinyNet,
    optimizer: torch.optim.Optimizer,
    meta_optimizer: torch.optim.Optimizer,
    hyper: list[nn.Parameter],
    lr: float,
    batch: tuple[torch.Tensor, torch.Tensor],
    meta_batch: tuple[torch.Tensor, torch.Tensor],
) -> None:
    data, labels = batch
    data_val, labels_val = meta_batch
    fc = model.fc
    optimizer.zero_grad()
    fast_parameters = list(fc.parameters())
    for weight in fc.parameters():
        weight.fast = None
    optimizer.zero_grad()
    logits = model(data)
    loss = training_loss(kind, logits, labels, hyper, fc)
    grad = torch.autograd.grad(loss, fast_parameters, create_graph=True)
    for k, weight in enumerate(fc.parameters()):
        weight.fast = weight - lr * grad[k]
    logits_val = model(data_val)  # through the fast weights
    meta_loss = F.cross_entropy(logits_val, labels_val) + 0.5 * dece(logits_val, labels_val)
    meta_optimizer.zero_grad()
    meta_loss.backward(retain_graph=True)
    meta_optimizer.step()
    clamp(kind, hyper)
    for weight in fc.parameters():
        weight.fast = None
    loss = training_loss(kind, logits, labels, hyper, fc)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 2)
    optimizer.step()
