"""scikit-learn's handwritten digits: the embedded default dataset.

1,797 real 8x8 grey-scale images of the digits 0-9 (UCI optdigits test set, 16 grey levels),
shipped inside scikit-learn, so it runs everywhere with no download.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits

from calibexp.data.bundle import DataBundle, Split, digest_indices, seeded_split
from calibexp.data.registry import DATASETS
from calibexp.errors import CalibexpError


@DATASETS.register("digits")
def digits(*, val_size: int = 450, test_size: int = 450, split_seed: int = 1) -> DataBundle:
    """Train / val / test from a seeded permutation (default 897 / 450 / 450)."""
    loaded = load_digits()
    n = len(loaded.target)
    if val_size < 1 or test_size < 1 or val_size + test_size >= n:
        raise CalibexpError(
            f"data.val_size={val_size}, data.test_size={test_size}: both must be >= 1 and leave "
            f"training images out of the {n} digits"
        )
    # 16 grey levels (0..16) -> 0..255 so every dataset is uint8 on the same scale.
    images = np.clip(np.rint(loaded.images * (255 / 16)), 0, 255).astype(np.uint8)[:, None]
    labels = loaded.target.astype(np.int64)
    train_idx, val_idx, test_idx = seeded_split(
        n, [n - val_size - test_size, val_size, test_size], split_seed
    )

    def split(idx: np.ndarray) -> Split:
        return Split(torch.from_numpy(images[idx]), torch.from_numpy(labels[idx]))

    train_pixels = images[train_idx].astype(np.float64) / 255
    return DataBundle(
        name="digits",
        train=split(train_idx),
        val=split(val_idx),
        test=split(test_idx),
        num_classes=10,
        mean=(float(train_pixels.mean()),),
        std=(float(train_pixels.std()),),
        split_digest=digest_indices(train_idx, val_idx, test_idx),
    )
