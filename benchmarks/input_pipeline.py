"""Input-pipeline speed: images/s of calibexp's device-resident ``DeviceLoader`` (one shuffle,
then per batch a gather, batched crop+flip and a fused normalise; batch 128) against torchvision's
``DataLoader`` over a Dataset of HWC uint8 numpy images that go through PIL and the reference
per-sample transforms (``RandomCrop(32, padding=4)``, ``RandomHorizontalFlip()``, ``ToTensor()``,
``Normalize(CIFAR10_MEAN, CIFAR10_STD)``; batch 128, ``shuffle=True``) with 0 and 2 workers.

    python benchmarks/input_pipeline.py [--n 50000] [--repeats 3] [--device auto]

Data: CIFAR-shaped random uint8 images [n, 3, 32, 32] with random labels 0..9, the same images
in both pipelines. Each timing is one full epoch, every batch consumed (on CUDA the device
pipeline is synchronised at the end, and the DataLoader's batches are copied to the device from
pinned memory, as a training loop would). The DataLoader's workers are started anew every epoch
(``persistent_workers=False``, the default), so their start-up counts. One warm-up epoch of the
device pipeline and a few warm-up batches of each DataLoader, then ``--repeats`` rounds that
alternate the three variants (in a rotating order) so drift in machine load hits all alike;
medians are quoted. The better DataLoader is the baseline. On a 2-core CPU the default run takes
well under two minutes.

Run it on an otherwise idle machine: the header prints the 1-minute load average. With another
busy process on a 2-core CPU, torch's two OpenMP threads contend with it and the device
pipeline's batched ops slow down some 30x, while the DataLoader's per-sample work barely notices.

Target: device pipeline / best DataLoader >= 10x on CPU.

Last measured: 2026-12-03 on a 2-core AMD EPYC x86_64 VM, 24 GiB, no GPU; Python 3.11.7, torch
2.14.1 (CPU), mlflow 3.17.2, optuna 5.1.0, numpy 2.4.6. device pipeline 90,451 images/s; DataLoader
6,231 (0 workers) and 8,417 (2 workers); ratio 10.7x (load average 0.32 at the start).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch

BATCH = 128
WORKERS = (0, 2)
RATIO_TARGET = 10.0
WARMUP_BATCHES = 5


def synthetic_cifar(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random uint8 images [n, 3, 32, 32] and random labels 0..9."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, 10, (n,), generator=gen)
    return images, labels


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_loader(images: torch.Tensor, labels: torch.Tensor, device: torch.device):
    from calibexp.data.augment import crop_and_flip
    from calibexp.data.bundle import Split
    from calibexp.data.cifar import CIFAR10_MEAN, CIFAR10_STD
    from calibexp.data.loader import DeviceLoader

    split = Split(images, labels)
    return DeviceLoader(split, BATCH, device, CIFAR10_MEAN, CIFAR10_STD, crop_and_flip(4))


def device_epoch(loader, device: torch.device, epoch: int) -> None:
    from calibexp.seeding import epoch_generator

    for _batch in loader.batches(epoch_generator(0, epoch, device)):
        pass
    synchronize(device)


class PilCifar(torch.utils.data.Dataset):
    """HWC uint8 numpy images, each turned into a PIL image and run through the reference
    per-sample transforms."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        from torchvision import transforms as T

        from calibexp.data.cifar import CIFAR10_MEAN, CIFAR10_STD

        self.images = [img for img in images.permute(0, 2, 3, 1).contiguous().numpy()]
        self.labels = labels.numpy()
        self.transform = T.Compose(
            [
                T.RandomCrop(32, padding=4),
                T.RandomHorizontalFlip(),
                T.ToTensor(),
                T.Normalize(CIFAR10_MEAN, CIFAR10_STD),
            ]
        )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def torch_loader(dataset: PilCifar, workers: int, device: torch.device):
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=BATCH,
        shuffle=True,
        num_workers=workers,
        pin_memory=device.type == "cuda",
    )


def torch_epoch(loader, device: torch.device, limit: int | None = None) -> None:
    """One epoch (or its first ``limit`` batches), each batch moved to ``device``."""
    for step, (images, labels) in enumerate(loader):
        if device.type != "cpu":
            images = images.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
        if limit is not None and step + 1 >= limit:
            break
    synchronize(device)


def seconds(fn: Callable[..., object], *args: object) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def variants(images, labels, device: torch.device) -> dict[str, Callable[[int], None]]:
    """Name -> function of the epoch index that runs one full epoch."""
    dev_loader = device_loader(images, labels, device)
    dataset = PilCifar(images, labels)
    runs: dict[str, Callable[[int], None]] = {
        "device pipeline": lambda epoch: device_epoch(dev_loader, device, epoch)
    }
    for workers in WORKERS:
        loader = torch_loader(dataset, workers, device)
        runs[f"DataLoader, {workers} workers"] = lambda epoch, ld=loader: torch_epoch(ld, device)
    return runs


def warm_up(images, labels, device: torch.device, runs: dict) -> None:
    runs["device pipeline"](0)
    dataset = PilCifar(images[: BATCH * WARMUP_BATCHES], labels[: BATCH * WARMUP_BATCHES])
    for workers in WORKERS:
        torch_epoch(torch_loader(dataset, workers, device), device, WARMUP_BATCHES)


def median_seconds(runs: dict[str, Callable[[int], None]], repeats: int) -> dict[str, float]:
    names = list(runs)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:  # rotate the order
            times[name].append(seconds(runs[name], r + 1))
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=50_000, help="images per epoch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    from calibexp.engine import describe_device, resolve_device

    device = resolve_device(args.device)
    print(
        f"input pipeline, n={args.n} CIFAR-shaped uint8 images, batch {BATCH}, one epoch x "
        f"{args.repeats} repeats, medians; device {describe_device(device)}; torch threads "
        f"{torch.get_num_threads()}, {os.cpu_count()} CPUs, load avg {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    images, labels = synthetic_cifar(args.n)
    runs = variants(images, labels, device)
    warm_up(images, labels, device, runs)
    medians = median_seconds(runs, args.repeats)
    rates = {name: args.n / t for name, t in medians.items()}
    width = max(len(name) for name in rates)
    for name, rate in rates.items():
        print(f"  {name:<{width}}  {rate:12,.0f} images/s  ({medians[name]:.3f} s/epoch)")
    best = max((name for name in rates if name.startswith("DataLoader")), key=rates.get)
    ratio = rates["device pipeline"] / rates[best]
    print(
        f"ratio device pipeline / best DataLoader ({best}): {ratio:.1f}x   "
        f"target >= {RATIO_TARGET:.0f}x on CPU"
    )


if __name__ == "__main__":
    main()
