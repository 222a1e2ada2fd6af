"""The digits dataset and the device-resident loader."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from calibexp.data import DATASETS, DeviceLoader
from calibexp.errors import CalibexpError
from calibexp.seeding import epoch_generator


def test_digits_split_is_seeded_disjoint_and_real():
    a = DATASETS.build("digits")
    b = DATASETS.build("digits")
    c = DATASETS.build("digits", split_seed=2)
    assert (len(a.train), len(a.val), len(a.test)) == (897, 450, 450)
    assert a.split_digest == b.split_digest != c.split_digest
    assert torch.equal(a.test.images, b.test.images) and not torch.equal(
        a.test.images, c.test.images
    )
    assert a.train.images.dtype == torch.uint8 and a.train.images.shape[1:] == (1, 8, 8)
    # every image is one of scikit-learn's digits with its own label, and no image is in two splits
    ref = load_digits()
    ref_images = np.clip(np.rint(ref.images * (255 / 16)), 0, 255).astype(np.uint8)
    lookup = {img.tobytes(): [] for img in ref_images}
    for img, label in zip(ref_images, ref.target):
        lookup[img.tobytes()].append(label)
    seen = 0
    for split in (a.train, a.val, a.test):
        for img, label in zip(split.images[:, 0].numpy(), split.labels.numpy()):
            assert label in lookup[img.tobytes()]
        seen += len(split)
    assert seen == len(ref.target) == 1797
    assert a.num_classes == 10 and set(a.test.labels.tolist()) == set(range(10))


def test_normalisation_stats_are_the_train_splits():
    data = DATASETS.build("digits")
    pixels = data.train.images.double() / 255
    assert data.mean[0] == pytest.approx(pixels.mean().item())
    assert data.std[0] == pytest.approx(pixels.std(unbiased=False).item())


def test_bad_split_sizes():
    with pytest.raises(CalibexpError, match="data.val_size=2000"):
        DATASETS.build("digits", val_size=2000)


def test_loader_normalises_and_keeps_order():
    data = DATASETS.build("digits")
    loader = DeviceLoader(data.val, 100, torch.device("cpu"), data.mean, data.std)
    inputs, labels = zip(*loader.batches())
    assert [len(x) for x in labels] == [100, 100, 100, 100, 50] and len(loader) == 5
    x = torch.cat(inputs)
    expected = (data.val.images.float() / 255 - data.mean[0]) / data.std[0]
    torch.testing.assert_close(x, expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(torch.cat(labels), data.val.labels)


def test_shuffle_is_a_seeded_permutation_per_epoch():
    data = DATASETS.build("digits")
    loader = DeviceLoader(data.train, 64, torch.device("cpu"), data.mean, data.std)

    def epoch_labels(seed: int, epoch: int) -> torch.Tensor:
        return torch.cat(
            [y for _, y in loader.batches(epoch_generator(seed, epoch, torch.device("cpu")))]
        )

    first = epoch_labels(0, 0)
    assert torch.equal(first, epoch_labels(0, 0))  # same (seed, epoch): same order
    assert not torch.equal(first, epoch_labels(0, 1))
    assert not torch.equal(first, data.train.labels)
    assert torch.equal(first.sort().values, data.train.labels.sort().values)  # each sample once
