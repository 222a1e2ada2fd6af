"""The train / predict loop. No MLflow and no config parsing here: just the algorithm.

The loop never asks which loss or model it holds: every loss is ``loss(logits, targets)`` on
float32 logits, every model returns logits. Running sums stay on the device and are read once
per epoch (a ``.item()`` per step would stall a GPU at every step).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
from torch import nn
from tqdm import tqdm

from calibexp.data.loader import DeviceLoader
from calibexp.errors import CalibexpError
from calibexp.losses.base import CalibrationLoss

# What every training epoch logs besides the loss's evidence (sample-weighted means).
TRAIN_KEYS = ("train/loss", "train/acc")
PROGRESS_EVERY = 10  # steps between progress-bar refreshes (each one is a host sync)


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


def train_one_epoch(
    model: nn.Module,
    loss_fn: CalibrationLoss,
    optimizer: torch.optim.Optimizer,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    *,
    steps: int,
    autocast: contextlib.AbstractContextManager,
    grad_clip: float | None,
    summed: bool,
    progress: bool,
    desc: str,
) -> dict[str, float]:
    """One pass over shuffled training batches; each step on the batch-mean loss, or with
    ``summed`` on B times it (torrvision's sum over the batch), clipped at ``grad_clip``.

    Returns ``train/loss``, ``train/acc`` and the loss's evidence: ``evidence/<key>`` for each
    of its ``components`` (sample-weighted mean over the epoch) and ``diagnostics`` (first batch).
    """
    model.train()
    device = next(model.parameters()).device
    sums = {key: torch.zeros((), device=device) for key in TRAIN_KEYS}
    first_batch: dict[str, torch.Tensor] = {}
    seen = 0
    bar = tqdm(batches, total=steps, desc=desc, leave=False, disable=None if progress else True)
    for step, (inputs, targets) in enumerate(bar):
        with autocast:
            logits = model(inputs).float()  # losses and metrics always see float32 logits
        loss = loss_fn(logits, targets)
        n = len(targets)
        optimizer.zero_grad(set_to_none=True)
        (loss * n if summed else loss).backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()

        seen += n
        with torch.no_grad():
            sums["train/loss"] += loss.detach() * n
            sums["train/acc"] += (logits.argmax(dim=1) == targets).sum()
            for key, value in loss_fn.components(logits.detach(), targets).items():
                sums[f"evidence/{key}"] = sums.get(f"evidence/{key}", 0) + value.mean() * n
        if step == 0:
            first_batch = {
                f"evidence/{k}": v.detach()
                for k, v in loss_fn.diagnostics(logits.detach(), targets).items()
            }
        if not bar.disable and step % PROGRESS_EVERY == 0:
            bar.set_postfix(
                loss=f"{sums['train/loss'].item() / seen:.4f}",
                acc=f"{sums['train/acc'].item() / seen:.3f}",
            )
    bar.close()
    keys = [*sums, *first_batch]
    # One device->host transfer for the whole epoch's numbers.
    values = torch.stack([*(v / seen for v in sums.values()), *first_batch.values()]).tolist()
    return dict(zip(keys, values))


@torch.no_grad()
def predict(
    model: nn.Module, loader: DeviceLoader, autocast: contextlib.AbstractContextManager
) -> tuple[torch.Tensor, torch.Tensor]:
    """Float32 logits [N, K] and targets [N] of a split, in its fixed order."""
    model.eval()
    logits, targets = [], []
    for inputs, labels in loader.batches():
        with autocast:
            out = model(inputs)
        logits.append(out.float())
        targets.append(labels)
    return torch.cat(logits), torch.cat(targets)


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])
