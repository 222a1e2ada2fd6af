"""The references' validation split written out as their code does it (torrvision/focal_calibration
``Data/cifar10.py::get_train_valid_loader``; meta-calibration takes the next block as meta-val):
the oracle ``calibexp.data.bundle.reference_split`` is tested against. It seeds NumPy's global
generator, as the references do, and puts it back afterwards."""

from __future__ import annotations

import numpy as np


def reference_indices(num_train: int, random_seed: int = 1) -> list[int]:
    """torrvision's shuffled index list."""
    saved = np.random.get_state()
    try:
        indices = list(range(num_train))
        np.random.seed(random_seed)
        np.random.shuffle(indices)
        return indices
    finally:
        np.random.set_state(saved)


def reference_blocks(num_train: int, split: int, meta: bool = False) -> dict[str, list[int]]:
    """val = indices[:split] (torrvision: ``split = int(np.floor(valid_size * num_train))``,
    5,000 for CIFAR's 0.1); with ``meta`` (meta-calibration), meta_val = indices[split:2 split]
    and train = indices[2 split:]; else train = indices[split:]."""
    indices = reference_indices(num_train)
    if meta:
        return {
            "val": indices[:split],
            "meta_val": indices[split : 2 * split],
            "train": indices[2 * split :],
        }
    return {"val": indices[:split], "train": indices[split:]}
