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
        b, c, h, w = images.shape
        padded = F.pad(images, (padding, padding, padding, padding))
        span = 2 * padding + 1
        dy = torch.randint(0, span, (b,), device=images.device, generator=generator)
        dx = torch.randint(0, span, (b,), device=images.device, generator=generator)
        rows = (dy[:, None] + torch.arange(h, device=images.device))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w, device=images.device))[:, None, None, :]
        batch = torch.arange(b, device=images.device)[:, None, None, None]
        channel = torch.arange(c, device=images.device)[None, :, None, None]
        return padded[batch, channel, rows, cols]

    return crop


def horizontal_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = torch.rand(len(images), device=images.device, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(3), images)


def crop_and_flip(padding: int = 4) -> tuple[Augmentation, ...]:
    """The CIFAR / Tiny-ImageNet training augmentation of every reference."""
    return (random_crop(padding), horizontal_flip)
