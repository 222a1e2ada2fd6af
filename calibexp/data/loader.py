"""A device-resident loader: the split lives on the training device as one uint8 tensor.

Each epoch is one ``randperm`` on the device; batches are gathered, augmented with batched
tensor ops and normalised in one fused multiply-add. No DataLoader workers, no per-sample work
(the airbench pattern: for small image sets held as uint8 there is nothing to decode, and a
tensor already on the device beats any worker pipeline).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from calibexp.data.bundle import Augmentation, Split


class DeviceLoader:
    def __init__(
        self,
        split: Split,
        batch_size: int,
        device: torch.device,
        mean: Sequence[float],
        std: Sequence[float],
        augment: Sequence[Augmentation] = (),
    ) -> None:
        self.images = split.images.to(device)
        self.labels = split.labels.to(device)
        self.domains = None if split.domains is None else split.domains.to(device)
        self.batch_size = batch_size
        self.augment = tuple(augment)
        # (x / 255 - mean) / std == x * scale + shift, per channel.
        std_t = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.scale = 1.0 / (255.0 * std_t)
        self.shift = -mean_t / std_t

    def __len__(self) -> int:
        return -(-len(self.labels) // self.batch_size)

    def batches(
        self, generator: torch.Generator | None = None
    ) -> Iterator[tuple[torch.Tensor, ...]]:
        """(inputs, targets) batches in order, or shuffled and augmented when a generator is
        given (training); (inputs, targets, domains) for a split of several domains."""
        n = len(self.labels)
        order = (
            None
            if generator is None
            else torch.randperm(n, device=self.images.device, generator=generator)
        )
        for start in range(0, n, self.batch_size):
            idx = (
                slice(start, start + self.batch_size)
                if order is None
                else order[start : start + self.batch_size]
            )
            images, labels = self.images[idx], self.labels[idx]
            if order is not None:
                for op in self.augment:
                    images = op(images, generator)
            batch = torch.addcmul(self.shift, images.float(), self.scale)
            if batch.is_cuda:  # matches the channels_last model (calibexp.run.build_model)
                batch = batch.contiguous(memory_format=torch.channels_last)
            yield (batch, labels) if self.domains is None else (batch, labels, self.domains[idx])
