"""Batched augmentations on uint8 image tensors, on whatever device they are on.

The references' per-sample ``RandomCrop(32, padding=4)`` + ``RandomHorizontalFlip()``, done for
a whole batch with one pad, one gather and one ``where``; the randomness comes from the epoch's
generator (``calibexp.seeding.epoch_generator``), so a run is reproducible under its seed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from calibexp.data.bundle import Augmentation


def random_crop(padding: int) -> Augmentation:
    """Zero-pad by ``padding`` on every side, then crop the original size at a random offset
    per image (torchvision's RandomCrop with ``padding``, fill 0)."""

    def crop(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        b, _, h, w = images.shape
        padded = F.pad(images, (padding, padding, padding, padding))
        span = 2 * padding + 1
        dy = torch.randint(0, span, (b,), device=images.device, generator=generator)
        dx = torch.randint(0, span, (b,), device=images.device, generator=generator)
        # Every h x w window of each padded image as a view [B, span, span, C, h, w]; picking
        # one per image is a single gather. Four full-size index tensors, the obvious
        # alternative, are 4x slower on a CPU.
        windows = padded.unfold(2, h, 1).unfold(3, w, 1).permute(0, 2, 3, 1, 4, 5)
        return windows[torch.arange(b, device=images.device), dy, dx]

    return crop


def horizontal_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = torch.rand(len(images), device=images.device, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(3), images)


def crop_and_flip(padding: int = 4) -> tuple[Augmentation, ...]:
    """The CIFAR / Tiny-ImageNet training augmentation of every reference."""
    return (random_crop(padding), horizontal_flip)
