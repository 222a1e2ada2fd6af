"""What a dataset builder returns: uint8 splits plus everything needed to feed them."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

# A batched augmentation: (uint8 images [B,C,H,W], generator) -> uint8 images, on any device.
Augmentation = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # uint8 [N, C, H, W]
    labels: torch.Tensor  # int64 [N]

    def __post_init__(self) -> None:
        assert self.images.dtype == torch.uint8 and self.images.ndim == 4, self.images.shape
        assert self.labels.dtype == torch.int64 and len(self.labels) == len(self.images)

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class DataBundle:
    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    mean: tuple[float, ...]  # per channel, on the [0, 1] scale
    std: tuple[float, ...]
    split_digest: str  # identifies the exact train/val/test indices
    train_augment: Sequence[Augmentation] = field(default=())

    @property
    def in_channels(self) -> int:
        return int(self.train.images.shape[1])


def seeded_split(n: int, sizes: Sequence[int], seed: int) -> list[np.ndarray]:
    """Disjoint index sets of the given sizes from a seeded permutation of range(n)."""
    if sum(sizes) > n:
        raise ValueError(f"split sizes {list(sizes)} exceed the {n} samples available")
    order = np.random.default_rng(seed).permutation(n)
    bounds = np.cumsum([0, *sizes])
    return [np.sort(order[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:])]


def digest_indices(*index_sets: np.ndarray) -> str:
    """A short sha256 over the index sets, logged so two runs can prove they saw the same split."""
    h = hashlib.sha256()
    for indices in index_sets:
        h.update(np.asarray(indices, dtype=np.int64).tobytes())
        h.update(b"|")
    return h.hexdigest()[:16]


def held_out_bundle(
    name: str,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    *,
    num_classes: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    val_size: int,
    split_seed: int,
    train_augment: Sequence[Augmentation] = (),
) -> DataBundle:
    """A dataset published as train + test: val is held out of train by a seeded permutation
    (the references' protocol), test is the published test set, untouched."""
    from calibexp.errors import CalibexpError

    images, labels = train
    n = len(labels)
    if not 1 <= val_size < n:
        raise CalibexpError(f"{name}: data.val_size={val_size} must be in [1, {n - 1}]")
    for where, split_labels in (("train", labels), ("test", test[1])):
        if split_labels.min() < 0 or split_labels.max() >= num_classes:
            raise CalibexpError(f"{name}: {where} labels outside 0..{num_classes - 1}")
    train_idx, val_idx = seeded_split(n, [n - val_size, val_size], split_seed)

    def split(x: np.ndarray, y: np.ndarray) -> Split:
        return Split(torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y))

    return DataBundle(
        name=name,
        train=split(images[train_idx], labels[train_idx]),
        val=split(images[val_idx], labels[val_idx]),
        test=split(*test),
        num_classes=num_classes,
        mean=mean,
        std=std,
        split_digest=digest_indices(train_idx, val_idx, np.arange(len(test[1]))),
        train_augment=train_augment,
    )
