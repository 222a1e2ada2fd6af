"""Rotated digits (Rotated-MNIST's construction, Ghifary et al. ICCV 2015, on scikit-learn's
digits): sizes, domain order, the images against ``digits`` and ``torch.rot90``, held-out
domains, the digest, the config schema and the one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from calibexp.config import load_config
from calibexp.data import DATASETS
from calibexp.errors import CalibexpError
from tests.support import ROOT


def test_default_sizes_and_domain_major_order():
    data = DATASETS.build("rotated_digits")
    assert data.name == "rotated_digits" and data.num_classes == 10 and data.in_channels == 1
    assert data.domain_names == ("rot0", "rot15", "rot30", "rot45", "rot60", "rot75")
    assert data.seen_domains == ("rot0", "rot15", "rot30", "rot45", "rot60")
    assert (len(data.train), len(data.val), len(data.test)) == (897 * 5, 450 * 5, 450 * 6)
    assert data.meta_val is None
    assert torch.equal(data.train.domains, torch.arange(5).repeat_interleave(897))
    assert torch.equal(data.val.domains, torch.arange(5).repeat_interleave(450))
    assert torch.equal(data.test.domains, torch.arange(6).repeat_interleave(450))
    # every domain holds the same base digits, so the labels repeat per domain
    assert torch.equal(data.train.labels, data.train.labels[:897].repeat(5))
    assert set(data.indices) == {
        "train",
        "val",
        "test",
        "angles",
        "train_domains",
        "val_domains",
        "test_domains",
    }
    assert data.indices["angles"].tolist() == [0, 15, 30, 45, 60, 75]
    assert (len(data.indices["train"]), len(data.indices["test"])) == (897, 450)
    assert np.array_equal(data.indices["test_domains"], data.test.domains.numpy())
    train_pixels = data.train.images.double() / 255
    assert data.mean == pytest.approx((float(train_pixels.mean()),))


def test_rot0_is_digits_at_the_same_positions():
    digits = DATASETS.build("digits", split_seed=3)
    data = DATASETS.build("rotated_digits", split_seed=3)
    for name in ("train", "val", "test"):
        assert np.array_equal(data.indices[name], digits.indices[name])
        first = getattr(data, name)
        n = len(getattr(digits, name))
        assert torch.equal(first.images[:n], getattr(digits, name).images)
        assert torch.equal(first.labels[:n], getattr(digits, name).labels)
    # a different angle really changes the pixels
    assert not torch.equal(data.train.images[897 : 2 * 897], digits.train.images)


def test_rot90_is_a_counter_clockwise_quarter_turn():
    digits = DATASETS.build("digits")
    data = DATASETS.build("rotated_digits", angles=[0, 90], train_angles=[0, 90])
    n = len(digits.train)
    assert data.domain_names == ("rot0", "rot90") and len(data.train) == 2 * n
    # positive angle = counter-clockwise: torch.rot90 from the row axis towards the column axis
    quarter = torch.rot90(digits.train.images, 1, dims=(-2, -1))
    assert torch.equal(data.train.images[n:], quarter)
    assert not torch.equal(data.train.images[n:], torch.rot90(digits.train.images, -1, (-2, -1)))


def test_held_out_domains_are_in_test_only():
    data = DATASETS.build(
        "rotated_digits", angles=[0, 30, 60], train_angles=[60, 0], val_size=100, test_size=200
    )
    assert data.seen_domains == ("rot0", "rot60")  # in the order of angles
    assert set(data.train.domains.tolist()) == set(data.val.domains.tolist()) == {0, 2}
    assert data.test.domains.tolist() == [0] * 200 + [1] * 200 + [2] * 200
    assert (len(data.train), len(data.val)) == (2 * 1497, 2 * 100)


def test_meta_val_and_determinism():
    a = DATASETS.build("rotated_digits", meta_val_size=100)
    b = DATASETS.build("rotated_digits", meta_val_size=100)
    assert (len(a.train), len(a.meta_val)) == (797 * 5, 100 * 5)
    assert torch.equal(a.meta_val.domains, torch.arange(5).repeat_interleave(100))
    assert set(a.indices) >= {"meta_val", "meta_val_domains"}
    assert a.split_digest == b.split_digest
    assert torch.equal(a.train.images, b.train.images)


def test_digest_depends_on_positions_and_angles():
    base = DATASETS.build("rotated_digits").split_digest
    assert DATASETS.build("rotated_digits", split_seed=2).split_digest != base
    # only the held-out angle differs: same positions, same domain indices
    other_angles = DATASETS.build("rotated_digits", angles=[0, 15, 30, 45, 60, 90])
    other_seen = DATASETS.build("rotated_digits", train_angles=[0, 15, 30, 45])
    assert len({base, other_angles.split_digest, other_seen.split_digest}) == 3
    assert DATASETS.build("digits").split_digest != base


def test_config_schema_accepts_it():
    cfg = load_config(
        ROOT / "configs/demo.yaml", ["data.name=rotated_digits", "data.train_angles=[0,15]"]
    )
    assert cfg.data.name == "rotated_digits"
    assert cfg.data.angles == [0, 15, 30, 45, 60, 75] and cfg.data.train_angles == [0, 15]
    with pytest.raises(CalibexpError, match="train_angle"):
        load_config(ROOT / "configs/demo.yaml", ["data.name=rotated_digits", "data.train_angle=1"])


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"angles": [0, 15, 15]}, "config key 'data.angles'.*distinct"),
        ({"angles": []}, "config key 'data.angles'.*non-empty"),
        ({"train_angles": []}, "config key 'data.train_angles'.*non-empty"),
        ({"train_angles": [0, 90]}, r"config key 'data.train_angles'.*from \[0, 15"),
        ({"val_size": 0}, "data.val_size=0.*val and test must be >= 1"),
        ({"test_size": 900, "val_size": 900}, "must leave training images out of the 1797"),
    ],
)
def test_bad_input_is_one_line(params, match):
    with pytest.raises(CalibexpError, match=match) as err:
        DATASETS.build("rotated_digits", **params)
    assert "\n" not in str(err.value)
