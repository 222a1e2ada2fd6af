"""Every real dataset format, read from tiny files written in exactly that format
(tests/support/fake_datasets.py), through the code a run uses: labels, shapes, split sizes,
determinism, and the one-line errors for missing and damaged files."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from calibexp.data import DATASETS, SHIFTED
from calibexp.data.cifar import CIFAR10_MEAN, CIFAR10_STD, CIFAR100_MEAN, CIFAR100_STD
from calibexp.data.tiny_imagenet import CACHE, IMAGENET_MEAN
from calibexp.errors import CalibexpError
from tests.support import ROOT
from tests.support.fake_datasets import (
    write_cifar10,
    write_cifar10_c,
    write_cifar100,
    write_svhn,
    write_tiny_imagenet,
)


def test_cifar10_from_its_pickles(tmp_path):
    written = write_cifar10(tmp_path)
    data = DATASETS.build("cifar10", root=str(tmp_path), val_size=10)
    assert (len(data.train), len(data.val), len(data.test)) == (50, 10, 20)
    assert data.num_classes == 10 and data.in_channels == 3
    assert (data.mean, data.std) == (CIFAR10_MEAN, CIFAR10_STD)
    images = written["train_data"].reshape(-1, 3, 32, 32)
    # train + val are a partition of the 50 training images, each with its own label
    together = torch.cat([data.train.images, data.val.images]).numpy()
    labels = torch.cat([data.train.labels, data.val.labels]).numpy()
    for image, label in zip(together, labels):
        match = np.flatnonzero((images == image).all(axis=(1, 2, 3)))
        assert len(match) == 1 and written["train_labels"][match[0]] == label
    assert np.array_equal(data.test.images.numpy(), written["test_data"].reshape(-1, 3, 32, 32))
    assert np.array_equal(data.test.labels.numpy(), written["test_labels"])
    assert len(data.train_augment) == 2  # crop(pad 4) + flip


def test_split_is_seeded_and_recorded(tmp_path):
    write_cifar10(tmp_path)
    a = DATASETS.build("cifar10", root=str(tmp_path), val_size=10)
    b = DATASETS.build("cifar10", root=str(tmp_path), val_size=10)
    c = DATASETS.build("cifar10", root=str(tmp_path), val_size=10, split_seed=2)
    assert a.split_digest == b.split_digest != c.split_digest
    assert torch.equal(a.val.images, b.val.images) and not torch.equal(a.val.images, c.val.images)


def test_cifar100_fine_labels_and_one_normalisation(tmp_path):
    written = write_cifar100(tmp_path)
    data = DATASETS.build("cifar100", root=str(tmp_path), val_size=10)
    assert (len(data.train), len(data.val), len(data.test), data.num_classes) == (50, 10, 20, 100)
    assert np.array_equal(data.test.labels.numpy(), written["test_labels"])
    # one set of statistics for train, val and test (torrvision used ImageNet's on test)
    assert data.mean == CIFAR100_MEAN


def test_svhn_test_split(tmp_path):
    written = write_svhn(tmp_path)
    split = SHIFTED.build("svhn", root=str(tmp_path))
    assert split.images.shape == (30, 3, 32, 32) and split.images.dtype == torch.uint8
    x = written["X"]
    assert np.array_equal(split.images[7].numpy(), x[:, :, :, 7].transpose(2, 0, 1))
    expected = written["y"].reshape(-1).astype(np.int64)
    assert np.array_equal(split.labels.numpy(), np.where(expected == 10, 0, expected))
    assert split.labels.max() <= 9


def test_tiny_imagenet_folders(tmp_path):
    written = write_tiny_imagenet(tmp_path)
    data = DATASETS.build("tiny_imagenet", root=str(tmp_path), val_size=3)
    assert (len(data.train), len(data.val), len(data.test), data.num_classes) == (9, 3, 6, 3)
    assert data.train.images.shape[1:] == (3, 64, 64) and data.mean == IMAGENET_MEAN
    wnids = sorted(written["wnids"])  # classes in sorted wnid order (ImageFolder's)
    assert data.test.labels.tolist() == [wnids.index(w) for w in written["val_wnids"]]
    folder = tmp_path / "tiny-imagenet-200"
    first = np.asarray(Image.open(folder / "val/images/val_0.JPEG").convert("RGB"))
    assert np.array_equal(data.test.images[0].numpy(), first.transpose(2, 0, 1))  # grey -> RGB
    assert (folder / CACHE).exists()  # decoded once; the next load reads the cache
    again = DATASETS.build("tiny_imagenet", root=str(tmp_path), val_size=3)
    assert torch.equal(again.train.images, data.train.images)
    assert again.split_digest == data.split_digest


def test_cifar10_c_severities(tmp_path):
    written = write_cifar10_c(tmp_path)
    for severity in (1, 5):
        split = SHIFTED.build("cifar10_c", root=str(tmp_path), corruption="fog", severity=severity)
        rows = slice(4 * (severity - 1), 4 * severity)
        assert np.array_equal(split.images.numpy(), written["fog"][rows].transpose(0, 3, 1, 2))
        assert np.array_equal(split.labels.numpy(), written["labels"][rows])
    with pytest.raises(CalibexpError, match="unknown corruption 'fgo' \\(did you mean 'fog'"):
        SHIFTED.build("cifar10_c", root=str(tmp_path), corruption="fgo")
    with pytest.raises(CalibexpError, match="severity"):
        SHIFTED.build("cifar10_c", root=str(tmp_path), severity=6)


@pytest.mark.parametrize(
    "name, build, fragment",
    [
        (
            "cifar10",
            lambda r: DATASETS.build("cifar10", root=r),
            "cifar-10-batches-py/data_batch_1",
        ),
        ("cifar100", lambda r: DATASETS.build("cifar100", root=r), "cifar-100-python/train"),
        ("tiny_imagenet", lambda r: DATASETS.build("tiny_imagenet", root=r), "wnids.txt"),
        ("svhn", lambda r: SHIFTED.build("svhn", root=r), "test_32x32.mat"),
        ("cifar10_c", lambda r: SHIFTED.build("cifar10_c", root=r), "gaussian_noise.npy"),
    ],
)
def test_missing_root_names_path_layout_source_and_key(tmp_path, name, build, fragment):
    with pytest.raises(CalibexpError) as err:
        build(str(tmp_path / "nowhere"))
    message = str(err.value)
    assert message.startswith(f"{name}: {tmp_path / 'nowhere'}") and fragment in message
    assert "expected" in message and "from http" in message and "data.root" in message
    assert "\n" not in message


def test_damaged_files_are_reported_not_trained_on(tmp_path):
    write_cifar10(tmp_path)
    batch = tmp_path / "cifar-10-batches-py/data_batch_3"
    batch.write_bytes(batch.read_bytes()[:500])  # a truncated download
    with pytest.raises(CalibexpError, match="data_batch_3 is damaged \\(not a readable CIFAR"):
        DATASETS.build("cifar10", root=str(tmp_path), val_size=10)
    with open(batch, "wb") as handle:  # the wrong shape
        data = np.zeros((12, 3000), np.uint8)
        pickle.dump({b"data": data, b"labels": [0] * 12}, handle)
    with pytest.raises(CalibexpError, match="uint8 \\(12, 3000\\), expected uint8 \\[n, 3072\\]"):
        DATASETS.build("cifar10", root=str(tmp_path), val_size=10)
    with open(batch, "wb") as handle:  # labels that do not match the images
        pickle.dump({b"data": np.zeros((12, 3072), np.uint8), b"labels": [0] * 11}, handle)
    with pytest.raises(CalibexpError, match="12 images but 11 labels"):
        DATASETS.build("cifar10", root=str(tmp_path), val_size=10)
    write_cifar10_c(tmp_path)
    np.save(tmp_path / "CIFAR-10-C/fog.npy", np.zeros((20, 32, 32, 3), np.float32))
    with pytest.raises(CalibexpError, match="fog.npy is damaged \\(float32"):
        SHIFTED.build("cifar10_c", root=str(tmp_path), corruption="fog")
    write_tiny_imagenet(tmp_path / "t")
    (tmp_path / "t/tiny-imagenet-200/train/n00009001/images/n00009001_2.JPEG").write_bytes(b"x")
    with pytest.raises(CalibexpError, match="n00009001_2.JPEG is damaged \\(not a readable"):
        DATASETS.build("tiny_imagenet", root=str(tmp_path / "t"))


@pytest.mark.slow
def test_data_entry_point_reports_and_fails_cleanly(tmp_path):
    write_cifar10(tmp_path)
    script = [sys.executable, str(ROOT / "entrypoints/data.py"), "--dataset", "cifar10"]
    ok = subprocess.run(
        [*script, "--root", str(tmp_path), "val_size=10"], capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert "cifar10: 10 classes" in ok.stdout and "train      50 images  (3, 32, 32)" in ok.stdout
    bad = subprocess.run([*script, "--root", str(tmp_path / "x")], capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("calibexp: error: cifar10: ")


def test_cifar100_torrvision_normalisation_is_its_mismatch(tmp_path):
    """data.normalisation=torrvision: the references' Data/cifar100.py normalise train and val
    with the CIFAR-10 statistics and test with ImageNet's; checked through the loaders a run
    uses against torchvision's ToTensor + Normalize on the same images."""
    from torchvision.transforms import functional as TF

    from calibexp.config import load_config
    from calibexp.data.tiny_imagenet import IMAGENET_STD
    from calibexp.parts import build_data

    written = write_cifar100(tmp_path)
    overrides = ["data.name=cifar100", f"data.root={tmp_path}", "data.val_size=10", "device=cpu"]
    for normalisation, train_stats, test_stats in (
        ("torrvision", (CIFAR10_MEAN, CIFAR10_STD), (IMAGENET_MEAN, IMAGENET_STD)),
        ("own", (CIFAR100_MEAN, CIFAR100_STD), (CIFAR100_MEAN, CIFAR100_STD)),
    ):
        cfg = load_config(
            ROOT / "configs/demo.yaml", [*overrides, f"data.normalisation={normalisation}"]
        )
        data, (_, val_loader, test_loader) = build_data(cfg, torch.device("cpu"))
        for loader, split, (mean, std) in (
            (val_loader, data.val, train_stats),
            (test_loader, data.test, test_stats),
        ):
            got = next(iter(loader.batches()))[0]
            expected = TF.normalize(split.images[: len(got)].float() / 255, mean, std)
            assert torch.allclose(got, expected, atol=1e-5), (normalisation, mean)
    assert np.array_equal(data.test.labels.numpy(), written["test_labels"])
