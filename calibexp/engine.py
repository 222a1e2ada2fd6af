"""The train / predict loop. No MLflow and no config parsing here: just the algorithm.

The loop never asks which loss or model it holds: every loss is ``loss(logits, targets)`` on
float32 logits, every model returns logits. Running sums stay on the device and are read once
per epoch: nothing inside the step loop makes the host wait for the device (a ``.item()`` per
step would leave a GPU idle between steps; ``train.check_syncs`` fails at any such wait,
``calibexp.execution.syncs``). How the step executes (compiled or eager) is the ``Compiler``'s
business (``calibexp.execution.compiling``), not the loop's.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from calibexp.data.loader import DeviceLoader
from calibexp.errors import CalibexpError
from calibexp.execution import Compiler, ProgressReadout, eager, no_host_syncs
from calibexp.losses.base import CalibrationLoss

# What every training epoch logs besides the loss's evidence (sample-weighted means).
TRAIN_KEYS = ("train/loss", "train/acc")
PROGRESS_EVERY = 10  # steps between progress-bar refreshes


def resolve_device(name: str) -> torch.device:
    """``auto``: CUDA, then Apple MPS, then CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = name.split(":")[0]
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": torch.backends.mps.is_available(),
    }
    if not available.get(kind, False):
        raise CalibexpError(f"device '{name}' is not available here; use device=auto or cpu")
    return torch.device(name)


def describe_device(device: torch.device) -> str:
    """The device in words, for logs and benchmark headers ("NVIDIA H100 80GB HBM3", "CPU, 2
    cores")."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type.upper()}, {os.cpu_count()} cores"


def autocast_for(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (``auto`` or ``bf16``); full fp32 everywhere else."""
    if precision == "bf16" and device.type != "cuda":
        raise CalibexpError(
            f"train.precision=bf16 needs a CUDA device, this run uses {device}; "
            "use train.precision=auto or fp32"
        )
    if device.type == "cuda" and precision in ("auto", "bf16"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class PlainStep:
    """One optimiser step on the loss: forward, backward on the batch mean (or, with
    ``summed``, B times it: torrvision's sum over the batch), clip at ``grad_clip``, step.

    The step strategy contract, which ``calibexp.meta.step.MetaStep`` follows too:
    ``begin_epoch(epoch, lr)``; ``step(inputs, targets, *context) -> (logits, loss)`` with the
    batch-mean loss, detached; ``batch_sums(logits, targets, loss)`` the batch's share of the
    epoch's means; ``end_epoch() -> dict`` of the epoch's own metrics; ``state_dict()`` /
    ``load_state_dict()`` for checkpoints; ``artifacts()`` to log with each checkpoint;
    ``figures()`` to draw at the end.

    With a ``compiler`` (``train.compile``), ``forward`` and ``batch_sums`` are compiled; the
    backward pass runs through the compiled graph's backward, the optimiser step stays eager.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: CalibrationLoss,
        optimizer: torch.optim.Optimizer,
        *,
        autocast: contextlib.AbstractContextManager,
        grad_clip: float | None,
        summed: bool,
        compiler: Compiler = eager,
    ) -> None:
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.autocast, self.grad_clip, self.summed = autocast, grad_clip, summed
        self.compiler = compiler
        self.forward = compiler(self.forward_and_loss)
        self.batch_sums = compiler(self.sums_of_batch)

    def begin_epoch(self, epoch: int, lr: float) -> None:
        return None

    def forward_and_loss(
        self, inputs: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        with self.autocast:
            logits = self.model(inputs).float()  # losses and metrics always see float32 logits
        return logits, self.loss_fn(logits, targets)

    def step(
        self, inputs: torch.Tensor, targets: torch.Tensor, *context: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self.compiler.begin_step()
        logits, loss = self.forward(inputs, targets)
        self.optimizer.zero_grad(set_to_none=True)
        (loss * len(targets) if self.summed else loss).backward()
        self.clip_and_step()
        return logits, loss.detach()

    def clip_and_step(self) -> None:
        if self.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()

    @torch.no_grad()
    def sums_of_batch(
        self, logits: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """The batch's contribution to each of the epoch's sample-weighted means:
        ``train/loss`` and ``train/acc`` (B × the batch's value) and, for each of the loss's
        ``components``, ``evidence/<key>`` (B × its batch mean)."""
        n = len(targets)
        logits = logits.detach()
        correct = (logits.argmax(dim=1) == targets).sum().float()
        sums = dict(zip(TRAIN_KEYS, (loss * n, correct)))
        for key, value in self.loss_fn.components(logits, targets).items():
            sums[f"evidence/{key}"] = value.float().mean() * n
        return sums

    def end_epoch(self) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None

    def artifacts(self) -> dict[str, dict[str, np.ndarray]]:
        return {}

    def figures(self) -> dict[str, Callable[[], Any]]:
        return {}


def train_one_epoch(
    train_step: PlainStep,
    batches: Iterator[tuple[torch.Tensor, ...]],
    *,
    steps: int,
    progress: bool,
    desc: str,
    check_syncs: bool = False,
) -> dict[str, float]:
    """One pass over shuffled training batches, one ``train_step`` each.

    Returns ``train/loss``, ``train/acc``, the loss's evidence (``evidence/<key>`` for each of
    its ``components``, the sample-weighted mean over the epoch, and its ``diagnostics`` on the
    first batch) and the step's own metrics (``meta/…``). With ``check_syncs`` a host-device
    sync inside the loop raises ``HostSyncError``.
    """
    model, loss_fn = train_step.model, train_step.loss_fn
    model.train()
    device = next(model.parameters()).device
    keys: list[str] = []
    totals = torch.zeros(0, device=device)
    first_batch: dict[str, torch.Tensor] = {}
    seen = 0
    bar = tqdm(batches, total=steps, desc=desc, leave=False, disable=None if progress else True)
    readout = None if bar.disable else ProgressReadout(device)  # pinned memory only if shown
    with no_host_syncs(device, check_syncs):
        for step, (inputs, targets, *context) in enumerate(bar):
            logits, loss = train_step.step(inputs, targets, *context)
            seen += len(targets)
            sums = train_step.batch_sums(logits, targets, loss)
            if step == 0:  # the keys are the loss's: fixed for the epoch
                keys, totals = list(sums), torch.zeros(len(sums), device=device)
                first_batch = {
                    f"evidence/{k}": v.detach()
                    for k, v in loss_fn.diagnostics(logits.detach(), targets).items()
                }
            totals += torch.stack(list(sums.values()))
            if readout is not None and step % PROGRESS_EVERY == 0:
                shown = readout.poll(totals[0], totals[1], seen)
                if shown is not None:
                    bar.set_postfix(loss=f"{shown[0]:.4f}", acc=f"{shown[1]:.3f}")
    bar.close()
    # One device->host transfer for the whole epoch's numbers.
    values = torch.cat([totals / seen, *(v.float().reshape(1) for v in first_batch.values())])
    return {**dict(zip([*keys, *first_batch], values.tolist())), **train_step.end_epoch()}


@torch.no_grad()
def predict(
    model: nn.Module, loader: DeviceLoader, autocast: contextlib.AbstractContextManager
) -> tuple[torch.Tensor, torch.Tensor]:
    """Float32 logits [N, K] and targets [N] of a split, in its fixed order."""
    model.eval()
    logits, targets = [], []
    for inputs, labels, *_ in loader.batches():
        with autocast:
            out = model(inputs)
        logits.append(out.float())
        targets.append(labels)
    return torch.cat(logits), torch.cat(targets)


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])
