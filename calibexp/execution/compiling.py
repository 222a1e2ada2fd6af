"""``train.compile``: the training step's forward, loss and evidence sums through torch.compile.

What is compiled is the step's pure part, ``logits, loss = forward(inputs, targets)`` (under
autocast), with its backward through AOTAutograd, and the per-batch sums the epoch keeps. The
optimiser step stays eager (``optim.fused`` makes it one kernel) and evaluation stays eager in
large batches, where launch overhead is already amortised.

Shapes are static (``dynamic=False``): a full batch and the epoch's last, smaller batch each get
their own graph (two compilations, then cache hits), which is what CUDA graphs need: with
``dynamic=True`` the batch size would become a symbolic input and ``reduce-overhead`` would
record a graph per size anyway. ``auto`` resolves to ``reduce-overhead`` (CUDA graphs through
cudagraph trees) on CUDA and to ``default`` elsewhere, where there are no CUDA graphs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TypeVar

import torch

F = TypeVar("F", bound=Callable)

# Compilations a function may go through before Dynamo falls back to eager for it: the two
# batch shapes of each of train and its evidence sums, and a recompile when a loss's schedule
# (on_epoch_start) changes an attribute the graph was specialised on.
RECOMPILE_LIMIT = 16


@dataclass(frozen=True)
class Compiler:
    """Applies torch.compile with one run's settings; ``mode`` None compiles nothing."""

    mode: str | None
    backend: str = "inductor"

    @cached_property  # asked at every step
    def cuda_graphs(self) -> bool:
        """Whether the mode records CUDA graphs (``reduce-overhead`` and ``max-autotune``)."""
        if self.mode is None or self.backend != "inductor":
            return False
        return bool(torch._inductor.list_mode_options(self.mode).get("triton.cudagraphs"))

    def __call__(self, fn: F) -> F:
        if self.mode is None:
            return fn
        if self.backend != "inductor":  # the modes are Inductor's; other backends take none
            return torch.compile(fn, backend=self.backend, dynamic=False)
        return torch.compile(fn, mode=self.mode, dynamic=False)

    def begin_step(self) -> None:
        """Tell cudagraph trees a new training iteration starts, so the previous step's
        outputs (already read) may be overwritten; without CUDA graphs there is nothing to do."""
        if self.cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()


eager = Compiler(None)


def compiler_for(
    enabled: bool, mode: str, device: torch.device, backend: str = "inductor"
) -> Compiler:
    """The ``train.compile`` / ``train.compile_mode`` settings for ``device``."""
    if not enabled:
        return eager
    if mode == "auto":
        mode = "reduce-overhead" if device.type == "cuda" else "default"
    # A fresh start for each run: the compiled code is keyed by the step's methods, shared by
    # every run of the process (a study's trials, a sweep worker's configs), and each loss or
    # hyper-parameter value would add its graphs until Dynamo's limit turned the step eager;
    # this also frees the previous run's CUDA graph memory.
    torch.compiler.reset()
    limit = torch._dynamo.config.cache_size_limit
    torch._dynamo.config.cache_size_limit = max(limit, RECOMPILE_LIMIT)
    return Compiler(mode, backend)
