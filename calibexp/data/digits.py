"""scikit-learn's handwritten digits: the embedded default dataset.

1,797 real 8x8 grey-scale images of the digits 0-9 (UCI optdigits test set, 16 grey levels),
shipped inside scikit-learn, so it runs everywhere with no download.
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits

from calibexp.data.bundle import DataBundle, Split, as_split, seeded_split, split_indices
from calibexp.data.registry import DATASETS
from calibexp.errors import CalibexpError


def split_digits(
    *, val_size: int, test_size: int, split_seed: int, meta_val_size: int
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """uint8 images [1797, 1, 8, 8], int64 labels and the sorted [train, val, test, meta_val]
    positions of a seeded permutation: shared by ``digits`` and ``rotated_digits`` so both hold
    out the same digits for the same settings."""
    loaded = load_digits()
    n = len(loaded.target)
    if val_size < 1 or test_size < 1 or meta_val_size < 0:
        raise CalibexpError(
            f"data.val_size={val_size}, data.test_size={test_size}, "
            f"data.meta_val_size={meta_val_size}: val and test must be >= 1, meta-val >= 0"
        )
    if val_size + test_size + meta_val_size >= n:
        raise CalibexpError(
            f"data.val_size={val_size} + data.test_size={test_size} + "
            f"data.meta_val_size={meta_val_size} must leave training images out of the {n} digits"
        )
    # 16 grey levels (0..16) -> 0..255 so every dataset is uint8 on the same scale.
    images = np.clip(np.rint(loaded.images * (255 / 16)), 0, 255).astype(np.uint8)[:, None]
    labels = loaded.target.astype(np.int64)
    train_size = n - val_size - test_size - meta_val_size
    positions = seeded_split(n, [train_size, val_size, test_size, meta_val_size], split_seed)
    return images, labels, positions


@DATASETS.register("digits", robustness=("image_patches", "digits_c"))
def digits(
    *, val_size: int = 450, test_size: int = 450, split_seed: int = 1, meta_val_size: int = 0
) -> DataBundle:
    """Train / val / test (and meta-val, for meta-calibration) from a seeded permutation
    (default 897 / 450 / 450; meta-val comes out of train)."""
    images, labels, (train_idx, val_idx, test_idx, meta_idx) = split_digits(
        val_size=val_size, test_size=test_size, split_seed=split_seed, meta_val_size=meta_val_size
    )
    indices, digest = split_indices(train_idx, val_idx, test_idx, meta_idx)

    def split(idx: np.ndarray) -> Split:
        return as_split(images[idx], labels[idx])

    train_pixels = images[train_idx].astype(np.float64) / 255
    return DataBundle(
        name="digits",
        train=split(train_idx),
        val=split(val_idx),
        test=split(test_idx),
        num_classes=10,
        mean=(float(train_pixels.mean()),),
        std=(float(train_pixels.std()),),
        split_digest=digest,
        indices=indices,
        meta_val=split(meta_idx) if meta_val_size else None,
    )
