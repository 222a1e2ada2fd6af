"""Optimisers and learning-rate schedules, registered like every other component.

The papers' CIFAR recipe (Mukhoti et al. 2020; torrvision/focal_calibration) is
``optim: {name: sgd, lr: 0.1, momentum: 0.9, weight_decay: 5e-4}`` with
``schedule: {name: multistep, milestones: [150, 250], gamma: 0.1}`` over 350 epochs, under
``protocol: torrvision`` (summed losses, gradient norm clipped at 2: calibexp.protocols).
Schedules are stepped once per epoch, *after* the epoch (PyTorch >= 1.1 order), or, with
``train.lr_step: epoch_start``, also once before the first epoch, which is torrvision's
``scheduler.step()`` at each epoch's start and moves every drop one epoch earlier.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from calibexp.errors import require
from calibexp.registry import Registry

OPTIMIZERS = Registry("optimizer")
SCHEDULES = Registry("schedule")


@OPTIMIZERS.register("sgd")
def sgd(
    params: Iterable[torch.nn.Parameter],
    *,
    lr: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    nesterov: bool = False,
    fused: bool = False,
) -> torch.optim.Optimizer:
    """SGD with momentum and L2 weight decay (``wd_ce`` = ``ce`` with weight_decay 5e-4).

    ``fused``: PyTorch's fused kernel, one launch for every parameter's update, instead of its
    default (the multi-tensor ``foreach`` kernels on CUDA, a loop over parameters on a CPU);
    the same update up to floating-point rounding."""
    require(lr > 0, "optim.lr", lr, "> 0")
    require(momentum >= 0, "optim.momentum", momentum, ">= 0")
    require(weight_decay >= 0, "optim.weight_decay", weight_decay, ">= 0")
    require(not nesterov or momentum > 0, "optim.nesterov", nesterov, "false when momentum is 0")
    return torch.optim.SGD(
        params,
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        nesterov=nesterov,
        fused=fused or None,  # None: PyTorch picks foreach or the loop
    )


@SCHEDULES.register("multistep")
def multistep(
    optimizer: torch.optim.Optimizer,
    *,
    milestones: list[int] = [150, 250],  # noqa: B006 - copied into the schema, never mutated
    gamma: float = 0.1,
) -> torch.optim.lr_scheduler.LRScheduler:
    """lr = base_lr · gamma^(number of milestones <= epoch)."""
    ordered = list(milestones) == sorted(set(milestones)) and all(m >= 1 for m in milestones)
    require(
        ordered,
        "schedule.milestones",
        list(milestones),
        "strictly increasing epochs >= 1, e.g. [150, 250]",
    )
    require(gamma > 0, "schedule.gamma", gamma, "> 0")
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(milestones), gamma=gamma)


@SCHEDULES.register("constant")
def constant(optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    """The optimiser's lr for every epoch."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)


@SCHEDULES.register("cosine")
def cosine(
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int = 0,  # required (the registry wants a default): 0 is refused at config time
    min_lr: float = 0.0,
) -> torch.optim.lr_scheduler.LRScheduler:
    """lr at epoch e = min_lr + (base_lr − min_lr)·(1 + cos(π·e/epochs))/2 (Loshchilov & Hutter,
    "SGDR", ICLR 2017, without restarts): the SA-FCL repository's ``scheduler: cosine``
    (``src/utils/lr.py``, set from the epoch index at each epoch's start). ``epochs`` is the
    schedule's length, normally ``${train.epochs}``."""
    require(epochs >= 1, "schedule.epochs", epochs, "an integer >= 1 (normally ${train.epochs})")
    require(min_lr >= 0, "schedule.min_lr", min_lr, ">= 0")
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=min_lr)
