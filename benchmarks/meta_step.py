"""What meta-calibration costs per training step: the median time of one
``calibexp.meta.step.MetaStep`` (non-uniform label smoothing, the reference's default) against
one ``calibexp.engine.PlainStep`` on the same CIFAR ResNet-18 (torchvision's with the CIFAR
stem; batch 128, SGD, summed loss and clip 2 as ``protocol: metacal``), both measured in this
run in alternating rounds, on synthetic CIFAR-shaped batches already on the device.

    python benchmarks/meta_step.py [--steps N] [--device auto]

The meta step adds a forward of the meta-val batch through the looked-ahead final layer, the
second-order backward into the hyper-parameters and, with ``meta.leak_to_model`` (the
reference's), a backward of the meta-loss through the whole network; ``leak_to_model=false``
is measured too. The reference's step does the same work, so about 2x a plain step is what the
algorithm costs, not overhead.

Target: the meta step <= 2.5x the plain step (the reference's work: two forwards and two
backwards through the network, plus the look-ahead's double backward through the head).

Last measured: 2026-12-06 on a 2-core AMD EPYC x86_64 VM, 24 GiB, no GPU; Python 3.11.7, torch
2.14.1 (CPU), 3 rounds x 3 steps: plain 2,504 ms, meta 5,507 ms (2.20x: met), meta without the
leak 3,459 ms (1.38x). The step as the reference orders it (the meta-loss's backward through
both graphs, then the training loss's: three passes) measured 2.94x in the same way before
``MetaStep`` took the two backwards as one. No GPU figure: this task was lent no GPU; on one,
run the command above as it is (bf16 autocast, channels_last).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
BATCH, NUM_CLASSES = 128, 10
TARGET = 2.5


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_step(kind: str, device: torch.device, autocast: contextlib.AbstractContextManager):
    from calibexp.config import MetaConfig
    from calibexp.engine import PlainStep
    from calibexp.losses import LOSSES
    from calibexp.meta.learners import META_LEARNERS
    from calibexp.meta.step import MetaStep, classifier_head
    from calibexp.models import BACKBONES

    torch.manual_seed(0)
    model = BACKBONES.build("resnet18", NUM_CLASSES, 3, cifar_stem=True)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    model = model.to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    settings = {"autocast": autocast, "grad_clip": 2.0, "summed": True}
    loss = LOSSES.build("ce")
    if kind == "plain":
        return PlainStep(model, loss, optimizer, **settings)
    head = classifier_head(model)[1]
    name = "label_smoothing_nonuniform"
    learner = META_LEARNERS.build(name, NUM_CLASSES, [head.weight.shape, head.bias.shape], 1).to(
        device
    )
    cfg = MetaConfig(name=name, leak_to_model=kind == "meta")
    step = MetaStep(model, loss, optimizer, learner, None, cfg, seed=0, **settings)
    step.lr = 0.1
    return step


def batch(device: torch.device, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randn(BATCH, 3, 32, 32, generator=g).to(device)
    if device.type == "cuda":
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    return inputs, torch.randint(0, NUM_CLASSES, (BATCH,), generator=g).to(device)


def seconds(step, device: torch.device, steps: int) -> list[float]:
    train, meta = batch(device, 0), batch(device, 1)
    step.batches = iter(lambda: meta, None)  # the same meta-val batch, endlessly
    times = []
    for _ in range(steps):
        synchronize(device)
        start = time.perf_counter()
        step.step(*train)
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from calibexp.engine import autocast_for, describe_device, resolve_device

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=None, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    steps = args.steps or (50 if device.type == "cuda" else 3)
    autocast = autocast_for(device, "auto")
    kinds = ("plain", "meta", "meta_no_leak")
    made = {kind: make_step(kind, device, autocast) for kind in kinds}
    for step in made.values():  # warm-up: allocator, cuDNN autotuning
        seconds(step, device, 2)
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    for _ in range(args.rounds):  # alternating, so drift in the machine's load hits all three
        for kind in kinds:
            times[kind] += seconds(made[kind], device, steps)
    median = {kind: statistics.median(t) for kind, t in times.items()}
    print(
        f"{describe_device(device)}; torch {torch.__version__}; CIFAR ResNet-18, batch {BATCH}; "
        f"{args.rounds} rounds x {steps} steps"
    )
    for kind in kinds:
        ratio = median[kind] / median["plain"]
        print(f"{kind:>13}: median step {median[kind] * 1000:8.1f} ms  ({ratio:.2f}x plain)")
    ratio = median["meta"] / median["plain"]
    verdict = "met" if ratio <= TARGET else "NOT met"
    print(f"meta step / plain step = {ratio:.2f} (target <= {TARGET}: {verdict})")


if __name__ == "__main__":
    main()
