"""The references' val (and meta-val) split, reproduced index for index: against the written-out
reference code (tests/support/reference_split.py) for CIFAR's N = 50,000 and a small N checked by
hand, and through the CIFAR builder on real-format files."""

from __future__ import annotations

import numpy as np
import pytest

from calibexp.data import DATASETS
from calibexp.data.bundle import digest_indices, reference_split, seeded_split
from calibexp.errors import CalibexpError
from tests.support.fake_datasets import write_cifar10
from tests.support.reference_split import reference_blocks


def test_small_n_by_hand():
    # np.random.seed(1); np.random.shuffle(list(range(10))) -> [2, 9, 6, 4, 0, 3, 1, 7, 8, 5]
    train, val, meta_val = reference_split(10, 3, meta_val_size=2)
    assert val.tolist() == [2, 6, 9]
    assert meta_val.tolist() == [0, 4]
    assert train.tolist() == [1, 3, 5, 7, 8]
    assert reference_blocks(10, 3)["val"] == [2, 9, 6]


@pytest.mark.parametrize("meta", [False, True])
def test_cifar_n_equals_the_written_out_reference(meta):
    blocks = reference_blocks(50_000, int(np.floor(0.1 * 50_000)), meta=meta)
    train, val, meta_val = reference_split(50_000, 5000, meta_val_size=5000 if meta else 0)
    assert val.tolist() == sorted(blocks["val"]) and len(val) == 5000
    assert train.tolist() == sorted(blocks["train"])
    assert meta_val.tolist() == sorted(blocks.get("meta_val", []))
    assert len(train) == (40_000 if meta else 45_000)


def test_the_old_permutation_shared_only_chance_level_with_the_reference():
    """Why the default changed: calibexp's earlier default_rng(1) permutation shares 501 of its
    5,000 val images with the references' (chance: 500)."""
    _, val, _ = reference_split(50_000, 5000)
    old_val = seeded_split(50_000, [45_000, 5000], 1)[1]
    assert len(np.intersect1d(val, old_val)) == 501


def test_cifar_builder_holds_out_the_reference_positions(tmp_path):
    written = write_cifar10(tmp_path)  # 60 training images in real pickles
    data = DATASETS.build("cifar10", root=str(tmp_path), val_size=6, meta_val_size=6)
    blocks = reference_blocks(60, 6, meta=True)
    assert data.indices["val"].tolist() == sorted(blocks["val"])
    assert data.indices["meta_val"].tolist() == sorted(blocks["meta_val"])
    assert data.indices["train"].tolist() == sorted(blocks["train"])
    assert data.indices["test"].tolist() == list(range(20))
    images = written["train_data"].reshape(-1, 3, 32, 32)
    assert np.array_equal(data.val.images.numpy(), images[sorted(blocks["val"])])
    assert np.array_equal(data.meta_val.images.numpy(), images[sorted(blocks["meta_val"])])
    assert data.val.labels.tolist() == written["train_labels"][sorted(blocks["val"])].tolist()
    assert len(data.train) == 48


def test_permutation_split_keeps_the_earlier_digest(tmp_path):
    write_cifar10(tmp_path)
    permuted = DATASETS.build("cifar10", root=str(tmp_path), val_size=6, split="permutation")
    train, val = seeded_split(60, [54, 6], 1)
    assert permuted.indices["val"].tolist() == val.tolist()
    assert permuted.split_digest == digest_indices(train, val, np.arange(20))
    reference = DATASETS.build("cifar10", root=str(tmp_path), val_size=6)
    assert reference.split_digest != permuted.split_digest


def test_a_meta_val_that_leaves_no_training_images_is_refused(tmp_path):
    write_cifar10(tmp_path)
    with pytest.raises(CalibexpError, match=r"data.meta_val_size=54 must be in \[0, 53\]"):
        DATASETS.build("cifar10", root=str(tmp_path), val_size=6, meta_val_size=54)
