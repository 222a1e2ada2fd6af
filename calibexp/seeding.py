"""Seeding, determinism and RNG state capture (for checkpoints that resume bit-exactly)."""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy and torch, and set torch's determinism switches either way, so one
    run's setting never leaks into the next run of the same process (studies run in-process)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs a fixed workspace to be deterministic; it must be set before first use.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic)
    # cuDNN autotuning picks kernels by timing, which makes runs differ; only without the switch.
    torch.backends.cudnn.benchmark = torch.cuda.is_available() and not deterministic
    torch.backends.cudnn.deterministic = deterministic


def epoch_generator(
    seed: int, epoch: int, device: torch.device, stream: int = 0
) -> torch.Generator:
    """The generator for one epoch's shuffling and augmentation (``stream`` 0: training
    batches; others for other draws, such as meta-calibration's meta-val batches).

    Derived from (seed, epoch, stream) alone, so a resumed run draws exactly the batches an
    uninterrupted run would, without having to carry the data RNG in the checkpoint.
    """
    generator = torch.Generator(device=device)
    generator.manual_seed(seed * 1_000_003 + epoch + stream * 2**40)
    return generator


def rng_state() -> dict[str, Any]:
    # numpy's state array travels as a tensor: checkpoints are read with weights_only=True,
    # which refuses numpy objects.
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [name, torch.from_numpy(keys.copy()), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy(), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
