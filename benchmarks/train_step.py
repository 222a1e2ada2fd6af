"""Training-step speed and input share: images/s of CIFAR ResNet-18 training (torchvision
ResNet-18 with the CIFAR stem, 11.2 M params; batch 128, cross-entropy, SGD lr 0.1 momentum 0.9)
fed by the ``DeviceLoader`` with crop+flip on synthetic CIFAR-shaped uint8 data held on the
device, and the share of step time spent producing the input batch.

    python benchmarks/train_step.py [--steps N] [--warmup N] [--n 50000] [--device auto]

Device: ``resolve_device("auto")`` unless ``--device`` says otherwise. On CUDA, as in a real run:
bf16 autocast (``autocast_for(device, "auto")``), a channels_last model and cuDNN autotuning.
Defaults: 30 timed steps after 3 warm-up steps on CPU, 200 after 20 on CUDA.

Each step is timed in two parts: input (``next()`` on the loader's batch generator: the epoch's
shuffle on its first batch, then gather, crop+flip and normalise) and compute (forward, loss,
backward, optimiser step). On CUDA the device is synchronised before the input, between the
parts and after the step, so each part's time is its own. A real run does not synchronise: its
input kernels still run on the same stream as the step's, but their launch can overlap the
previous step's GPU work, so the share measured here is an upper bound.

Reported: median images/s over the timed steps (batch / whole-step time, input included) and
input share = total input time / total step time. On CPU the share is tiny because the step is
slow.

Target: input share <= 1%.

Last measured: 2026-12-03 on a 2-core AMD EPYC x86_64 VM, 24 GiB, no GPU; Python 3.11.7, torch
2.14.1 (CPU), mlflow 3.17.2, optuna 5.1.0, numpy 2.4.6. CPU: median step 3,110 ms = 41 images/s,
input 1.76 ms per batch = 0.07% (target met). No GPU figure: no GPU was available.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Iterator

import torch

BATCH = 128
NUM_CLASSES = 10
SHARE_TARGET = 0.01
DEFAULT_STEPS = {"cuda": (200, 20)}  # (timed, warm-up); anything else: CPU_STEPS
CPU_STEPS = (30, 3)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def synthetic_split(n: int, device: torch.device, seed: int = 0):
    """Random uint8 images [n, 3, 32, 32] and labels 0..9 on ``device``."""
    from calibexp.data.bundle import Split

    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, NUM_CLASSES, (n,), generator=gen)
    return Split(images.to(device), labels.to(device))


def endless_batches(loader, device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The loader's shuffled, augmented batches, epoch after epoch."""
    from calibexp.seeding import epoch_generator

    epoch = 0
    while True:
        yield from loader.batches(epoch_generator(0, epoch, device))
        epoch += 1


def synthetic_loader(n: int, batch: int, device: torch.device):
    """The training loader of a run, crop+flip included, on ``synthetic_split(n)``."""
    from calibexp.data.augment import crop_and_flip
    from calibexp.data.cifar import CIFAR10_MEAN, CIFAR10_STD
    from calibexp.data.loader import DeviceLoader

    split = synthetic_split(n, device)
    return DeviceLoader(split, batch, device, CIFAR10_MEAN, CIFAR10_STD, crop_and_flip(4))


def build_model(device: torch.device) -> torch.nn.Module:
    from calibexp.models import BACKBONES
    from calibexp.parts import place_model

    model = BACKBONES.build("resnet18", NUM_CLASSES, 3, cifar_stem=True)
    return place_model(model, device).train()


def timed_step(batches, model, loss_fn, optimizer, autocast, device) -> tuple[float, float]:
    """(input seconds, whole-step seconds) of one training step."""
    synchronize(device)
    start = time.perf_counter()
    inputs, targets = next(batches)
    synchronize(device)
    fetched = time.perf_counter()
    with autocast:
        logits = model(inputs).float()
    loss = loss_fn(logits, targets)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    synchronize(device)
    return fetched - start, time.perf_counter() - start


def run_steps(device: torch.device, n: int, steps: int, warmup: int) -> list[tuple[float, float]]:
    from calibexp.engine import autocast_for
    from calibexp.losses import LOSSES

    loader = synthetic_loader(n, BATCH, device)
    model = build_model(device)
    loss_fn = LOSSES.build("ce")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    autocast = autocast_for(device, "auto")
    batches = endless_batches(loader, device)
    times = [
        timed_step(batches, model, loss_fn, optimizer, autocast, device)
        for _ in range(warmup + steps)
    ]
    return times[warmup:]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=None, help="timed steps")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps before them")
    parser.add_argument("--n", type=int, default=50_000, help="images in the synthetic split")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    from calibexp.engine import describe_device, resolve_device

    device = resolve_device(args.device)
    steps, warmup = DEFAULT_STEPS.get(device.type, CPU_STEPS)
    steps = args.steps if args.steps is not None else steps
    warmup = args.warmup if args.warmup is not None else warmup
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    print(
        f"CIFAR ResNet-18 training step, batch {BATCH}, {steps} steps after {warmup} warm-up; "
        f"device {describe_device(device)}; torch threads {torch.get_num_threads()}, "
        f"load avg {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    times = run_steps(device, args.n, steps, warmup)
    input_total = sum(t_in for t_in, _ in times)
    step_total = sum(t_step for _, t_step in times)
    step_median = statistics.median(t_step for _, t_step in times)
    input_median = statistics.median(t_in for t_in, _ in times)
    share = input_total / step_total
    print(f"median step {step_median * 1000:.1f} ms  ->  {BATCH / step_median:,.0f} images/s")
    print(f"median input {input_median * 1000:.2f} ms per batch")
    print(f"input share (total input / total step): {share:.2%}   target <= {SHARE_TARGET:.0%}")


if __name__ == "__main__":
    main()
