"""What a dataset builder returns: uint8 splits plus everything needed to feed them."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np
import torch

# A batched augmentation: (uint8 images [B,C,H,W], generator) -> uint8 images, on any device.
Augmentation = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # uint8 [N, C, H, W]
    labels: torch.Tensor  # int64 [N]
    # int64 [N]: each sample's domain, an index into DataBundle.domain_names, for a dataset
    # made of several domains (rotated digits); None for one domain.
    domains: torch.Tensor | None = None

    def __post_init__(self) -> None:
        assert self.images.dtype == torch.uint8 and self.images.ndim == 4, self.images.shape
        assert self.labels.dtype == torch.int64 and len(self.labels) == len(self.images)
        assert self.domains is None or (
            self.domains.dtype == torch.int64 and len(self.domains) == len(self.labels)
        )

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
    split_digest: str  # identifies the exact train/val/test (and meta-val) indices
    train_augment: Sequence[Augmentation] = field(default=())
    # Positions of each split's samples in the files they were read from (train, val and
    # meta_val in the training file, test in the test file): logged as splits.npz.
    indices: dict[str, np.ndarray] = field(default_factory=dict)
    # Held out of train for meta-calibration's meta-objective (Bohdal et al. 2023); None when
    # data.meta_val_size is 0.
    meta_val: Split | None = None
    # (mean, std) the test split is normalised with when it differs from train/val's: only
    # torrvision's CIFAR-100 convention (cifar.py, data.normalisation=torrvision).
    test_normalisation: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    # The named domains of a multi-domain dataset (each Split's ``domains`` index into them),
    # and those that train, val and meta-val are drawn from; test holds every domain, the
    # held-out ones too. () for a dataset of one domain.
    domain_names: tuple[str, ...] = ()
    seen_domains: tuple[str, ...] = ()

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


def reference_split(
    n: int, val_size: int, seed: int = 1, meta_val_size: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, val, meta_val) positions in range(n), each sorted, exactly as the references.

    torrvision/focal_calibration ``Data/cifar10.py`` (and meta-calibration, Dual Focal Loss):
    ``indices = list(range(n)); np.random.seed(1); np.random.shuffle(indices)``, val =
    ``indices[:val_size]``, train = the rest; meta-calibration's meta-val is the next block,
    ``indices[val_size:val_size + meta_val_size]``, and train what follows. A private
    ``RandomState`` draws the same shuffle without touching NumPy's global state.
    """
    indices = list(range(n))
    np.random.RandomState(seed).shuffle(indices)
    order = np.asarray(indices, dtype=np.int64)
    val = order[:val_size]
    meta_val = order[val_size : val_size + meta_val_size]
    train = order[val_size + meta_val_size :]
    return np.sort(train), np.sort(val), np.sort(meta_val)


def digest_indices(*index_sets: np.ndarray) -> str:
    """A short sha256 over the index sets, logged so two runs can prove they saw the same split."""
    h = hashlib.sha256()
    for indices in index_sets:
        h.update(np.asarray(indices, dtype=np.int64).tobytes())
        h.update(b"|")
    return h.hexdigest()[:16]


def split_indices(
    train: np.ndarray, val: np.ndarray, test: np.ndarray, meta_val: np.ndarray
) -> tuple[dict[str, np.ndarray], str]:
    """The ``indices`` of a bundle (``meta_val`` only when it holds any) and their digest; a
    split without meta-val keeps the digest it had before meta-val existed."""
    indices = {"train": train, "val": val, "test": test}
    if len(meta_val):
        indices["meta_val"] = meta_val
    return indices, digest_indices(*indices.values())


# How val (and meta-val) are held out of a published training set: ``reference`` is the
# references' shuffle (reference_split); ``permutation`` is calibexp's earlier
# ``default_rng(split_seed).permutation``, kept so runs made with it can be repeated.
HeldOutSplit = Literal["reference", "permutation"]
HELD_OUT_SPLITS: tuple[str, ...] = get_args(HeldOutSplit)


def as_split(images: np.ndarray, labels: np.ndarray) -> Split:
    return Split(torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels))


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
    split: str = "reference",
    meta_val_size: int = 0,
    train_augment: Sequence[Augmentation] = (),
    test_normalisation: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
) -> DataBundle:
    """A dataset published as train + test: val (and meta-val) held out of train by ``split``,
    test the published test set, untouched."""
    from calibexp.errors import CalibexpError, require

    images, labels = train
    n = len(labels)
    require(split in HELD_OUT_SPLITS, "data.split", split, " | ".join(HELD_OUT_SPLITS))
    if not 1 <= val_size < n:
        raise CalibexpError(f"{name}: data.val_size={val_size} must be in [1, {n - 1}]")
    if not 0 <= meta_val_size < n - val_size:
        raise CalibexpError(
            f"{name}: data.meta_val_size={meta_val_size} must be in [0, {n - val_size - 1}] "
            f"(val_size {val_size} of {n} training images)"
        )
    for where, split_labels in (("train", labels), ("test", test[1])):
        if split_labels.min() < 0 or split_labels.max() >= num_classes:
            raise CalibexpError(f"{name}: {where} labels outside 0..{num_classes - 1}")
    if split == "reference":
        train_idx, val_idx, meta_idx = reference_split(n, val_size, split_seed, meta_val_size)
    else:
        train_idx, val_idx, meta_idx = seeded_split(
            n, [n - val_size - meta_val_size, val_size, meta_val_size], split_seed
        )
    indices, digest = split_indices(train_idx, val_idx, np.arange(len(test[1])), meta_idx)
    return DataBundle(
        name=name,
        train=as_split(images[train_idx], labels[train_idx]),
        val=as_split(images[val_idx], labels[val_idx]),
        test=as_split(*test),
        num_classes=num_classes,
        mean=mean,
        std=std,
        split_digest=digest,
        train_augment=train_augment,
        indices=indices,
        meta_val=as_split(images[meta_idx], labels[meta_idx]) if meta_val_size else None,
        test_normalisation=test_normalisation,
    )
