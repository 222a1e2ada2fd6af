"""CIFAR-10 + CIFAR-10-C corruptions as domains (Hendrycks & Dietterich, ICLR 2019), read from
tiny files in the real formats (tests/support/fake_datasets.py): 60 training and 20 test images,
so each corruption's severity block has 20 rows, 10 for test and 10 in the domain pool."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from calibexp.config import load_config
from calibexp.data import DATASETS
from calibexp.data.cifar import CIFAR10_MEAN
from calibexp.errors import CalibexpError
from tests.support import ROOT
from tests.support.fake_datasets import write_cifar10, write_cifar10_c

CORRUPTIONS = ("gaussian_noise", "motion_blur", "fog", "contrast")  # the default domains


@pytest.fixture
def files(tmp_path):
    clean = write_cifar10(tmp_path)  # 5 x 12 training images, 20 test images
    shifted = write_cifar10_c(tmp_path, CORRUPTIONS, per=20)
    # CIFAR-10-C's labels.npy is CIFAR-10's test labels, once per severity
    shifted["labels"] = np.tile(clean["test_labels"].astype(np.uint8), 5)
    np.save(tmp_path / "CIFAR-10-C/labels.npy", shifted["labels"])
    return tmp_path, clean, shifted


def positions(seed: int, val: int, meta: int) -> tuple[np.ndarray, ...]:
    """The documented rule, written out: one permutation of the 20 test rows, 10 test, then
    the pool's val, meta-val and train."""
    order = np.random.default_rng(seed).permutation(20)
    bounds = np.cumsum([0, 10, val, meta, 10 - val - meta])
    return tuple(np.sort(order[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:]))


def rows(shifted: dict, name: str, severity: int, pos: np.ndarray) -> torch.Tensor:
    block = shifted[name][20 * (severity - 1) : 20 * severity]
    return torch.from_numpy(block[pos].transpose(0, 3, 1, 2).copy())


def test_domains_sizes_and_membership(files):
    root, clean, shifted = files
    data = DATASETS.build("cifar10_domains", root=str(root), val_size=10)
    assert data.name == "cifar10_domains" and data.num_classes == 10 and data.in_channels == 3
    assert data.domain_names == ("clean", *CORRUPTIONS)
    assert data.seen_domains == ("clean", "gaussian_noise", "motion_blur")
    assert data.mean == CIFAR10_MEAN and len(data.train_augment) == 2
    # pool val share = 10 of 60 training images: round(10 * 10 / 60) = 2 of the 10 pool rows
    assert data.train.domains.tolist() == [0] * 50 + [1] * 8 + [2] * 8
    assert data.val.domains.tolist() == [0] * 10 + [1] * 2 + [2] * 2
    assert data.test.domains.tolist() == [d for d in range(5) for _ in range(10)]
    assert data.meta_val is None
    assert set(data.indices) == {
        "train",
        "val",
        "test",
        "pool_train",
        "pool_val",
        "train_domains",
        "val_domains",
        "test_domains",
    }
    # clean train/val is exactly cifar10's split of the same files
    plain = DATASETS.build("cifar10", root=str(root), val_size=10)
    assert torch.equal(data.train.images[:50], plain.train.images)
    assert torch.equal(data.val.images[:10], plain.val.images)
    assert np.array_equal(data.indices["train"], plain.indices["train"])


def test_rows_are_at_the_documented_positions(files):
    root, clean, shifted = files
    data = DATASETS.build("cifar10_domains", root=str(root), val_size=10, severity=2)
    test, val, _, train = positions(1, 2, 0)
    assert np.array_equal(data.indices["test"], test)
    assert np.array_equal(data.indices["pool_train"], train)
    assert np.array_equal(data.indices["pool_val"], val)
    # a seen corruption's train and val are its severity-2 rows at the pool positions
    assert torch.equal(data.train.images[50:58], rows(shifted, "gaussian_noise", 2, train))
    assert torch.equal(data.train.images[58:66], rows(shifted, "motion_blur", 2, train))
    assert torch.equal(data.val.images[10:12], rows(shifted, "gaussian_noise", 2, val))
    labels = torch.from_numpy(clean["test_labels"])
    assert torch.equal(data.train.labels[50:58], labels[train])
    # every domain's test is the same 10 underlying test images
    test_images = clean["test_data"].reshape(-1, 3, 32, 32)[test]
    assert torch.equal(data.test.images[:10], torch.from_numpy(test_images))
    for d, name in enumerate(CORRUPTIONS, 1):
        assert torch.equal(data.test.images[10 * d : 10 * (d + 1)], rows(shifted, name, 2, test))
        assert torch.equal(data.test.labels[10 * d : 10 * (d + 1)], labels[test])
    # the pool and test positions never share an underlying image
    assert not set(test) & set(train) and not set(test) & set(val)


def test_held_out_corruption_is_in_test_only(files):
    root, _, shifted = files
    data = DATASETS.build("cifar10_domains", root=str(root), val_size=10, train_corruptions=["fog"])
    assert data.seen_domains == ("clean", "fog")
    assert set(data.train.domains.tolist()) == set(data.val.domains.tolist()) == {0, 3}
    assert set(data.test.domains.tolist()) == {0, 1, 2, 3, 4}
    fog = torch.from_numpy(shifted["fog"].transpose(0, 3, 1, 2).copy())
    contrast = torch.from_numpy(shifted["contrast"].transpose(0, 3, 1, 2).copy())
    for image in torch.cat([data.train.images, data.val.images]):
        assert not (contrast == image).all(dim=(1, 2, 3)).any()
    assert sum(bool((fog == im).all(dim=(1, 2, 3)).any()) for im in data.train.images) == 8
    clean_only = DATASETS.build(
        "cifar10_domains", root=str(root), val_size=10, train_corruptions=[]
    )
    assert clean_only.seen_domains == ("clean",) and len(clean_only.train) == 50


def test_meta_val_in_the_clean_proportions(files):
    root, _, shifted = files
    data = DATASETS.build("cifar10_domains", root=str(root), val_size=10, meta_val_size=5)
    # pool: val round(10 * 10 / 60) = 2, meta-val round(10 * 5 / 60) = 1, train 7
    assert (len(data.train), len(data.val), len(data.meta_val)) == (45 + 14, 10 + 4, 5 + 2)
    assert data.meta_val.domains.tolist() == [0] * 5 + [1, 2]
    _, _, meta, train = positions(1, 2, 1)
    assert np.array_equal(data.indices["pool_meta_val"], meta)
    assert torch.equal(data.meta_val.images[5:6], rows(shifted, "gaussian_noise", 3, meta))
    assert torch.equal(data.train.images[45:52], rows(shifted, "gaussian_noise", 3, train))


def test_digest_is_seeded_and_names_the_domains(files):
    root = str(files[0])
    digest = DATASETS.build("cifar10_domains", root=root, val_size=10).split_digest
    assert DATASETS.build("cifar10_domains", root=root, val_size=10).split_digest == digest
    others = [
        DATASETS.build("cifar10_domains", root=root, val_size=10, **change).split_digest
        for change in (
            {"split_seed": 2},
            {"severity": 4},
            {"corruptions": ["gaussian_noise", "motion_blur", "contrast", "fog"]},
            {"train_corruptions": ["gaussian_noise", "fog"]},
        )
    ]
    assert len({digest, *others}) == 5


def test_config_schema_accepts_it():
    cfg = load_config(
        ROOT / "configs/demo.yaml",
        ["data.name=cifar10_domains", "data.train_corruptions=[fog]", "data.severity=5"],
    )
    assert cfg.data.corruptions == list(CORRUPTIONS) and cfg.data.train_corruptions == ["fog"]
    assert (cfg.data.severity, cfg.data.val_size, cfg.data.split) == (5, 5000, "reference")


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"corruptions": ["fgo"]}, "data.corruptions.*unknown corruption 'fgo'.*'fog'"),
        ({"corruptions": ["fog", "fog"]}, "config key 'data.corruptions'.*distinct"),
        ({"train_corruptions": ["snow"]}, "config key 'data.train_corruptions'.*from"),
        ({"severity": 6}, "config key 'data.severity'.*1..5"),
        ({"val_size": 60}, r"data.val_size=60 must be in \[1, 59\]"),
    ],
)
def test_bad_input_is_one_line(files, params, match):
    with pytest.raises(CalibexpError, match=match) as err:
        DATASETS.build("cifar10_domains", root=str(files[0]), **{"val_size": 10, **params})
    assert "\n" not in str(err.value)


def test_missing_and_mismatched_files(tmp_path):
    with pytest.raises(CalibexpError, match="cifar10: .*data_batch_1 not found"):
        DATASETS.build("cifar10_domains", root=str(tmp_path), val_size=10)
    write_cifar10(tmp_path)
    write_cifar10_c(tmp_path, ("gaussian_noise", "motion_blur", "fog"), per=20)
    with pytest.raises(CalibexpError, match="contrast.npy not found.*CIFAR-10-C"):
        DATASETS.build("cifar10_domains", root=str(tmp_path), val_size=10)
    # the fake's own labels.npy is not CIFAR-10's test labels: rows would not line up
    with pytest.raises(CalibexpError, match="fog.npy is damaged.*not CIFAR-10's 20 test images"):
        DATASETS.build(
            "cifar10_domains",
            root=str(tmp_path),
            val_size=10,
            corruptions=["fog"],
            train_corruptions=[],
        )
