"""The train / predict loop. No MLflow and no config parsing here: just the algorithm.

The loop never asks which loss or model it holds: every loss is ``loss(logits, targets)`` on
float32 logits, every model returns logits. Running sums stay on the device and are read once
per epoch (a ``.item()`` per step would stall a GPU at every step).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn
from tqdm import tqdm

from calibexp.data.loader import DeviceLoader
from calibexp.errors import CalibexpError
from calibexp.losses.base import CalibrationLoss

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
    progress: bool,
    desc: str,
) -> dict[str, float]:
    """One pass over shuffled training batches; returns ``train/loss`` and ``train/acc``."""
    model.train()
    device = next(model.parameters()).device
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device)
    seen = 0
    bar = tqdm(batches, total=steps, desc=desc, leave=False, disable=None if progress else True)
    for step, (inputs, targets) in enumerate(bar):
        with autocast:
            logits = model(inputs)
        loss = loss_fn(logits.float(), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()

        loss_sum += loss.detach() * len(targets)
        correct += (logits.detach().argmax(dim=1) == targets).sum()
        seen += len(targets)
        if not bar.disable and step % PROGRESS_EVERY == 0:
            bar.set_postfix(
                loss=f"{loss_sum.item() / seen:.4f}", acc=f"{correct.item() / seen:.3f}"
            )
    bar.close()
    return {"train/loss": loss_sum.item() / seen, "train/acc": correct.item() / seen}


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
