"""Tiny files in each real dataset format, written the way the published archives are laid out,
so tests load them through exactly the code a user runs. Each writer returns what it wrote."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def write_cifar10(root: Path, per_batch: int = 12, test: int = 20, seed: int = 0) -> dict:
    """cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}: pickled dicts with bytes
    keys, b'data' uint8 [n, 3072] channel-major, b'labels' a list of ints."""
    rng, folder = _rng(seed), root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    written = {"train_data": [], "train_labels": []}
    for i in range(1, 6):
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, per_batch).tolist()
        _dump(folder / f"data_batch_{i}", {b"batch_label": b"x", b"labels": labels, b"data": data})
        written["train_data"].append(data)
        written["train_labels"] += labels
    data = rng.integers(0, 256, (test, 3072), dtype=np.uint8)
    labels = rng.integers(0, 10, test).tolist()
    _dump(folder / "test_batch", {b"batch_label": b"t", b"labels": labels, b"data": data})
    _dump(folder / "batches.meta", {b"label_names": [b"c%d" % i for i in range(10)]})
    return {
        "train_data": np.concatenate(written["train_data"]),
        "train_labels": np.array(written["train_labels"]),
        "test_data": data,
        "test_labels": np.array(labels),
    }


def write_cifar100(root: Path, train: int = 60, test: int = 20, seed: int = 1) -> dict:
    """cifar-100-python/{train, test, meta}: b'fine_labels' (0..99) and b'coarse_labels'."""
    rng, folder = _rng(seed), root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, n in (("train", train), ("test", test)):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        fine = rng.integers(0, 100, n).tolist()
        coarse = [f // 5 for f in fine]
        _dump(folder / name, {b"data": data, b"fine_labels": fine, b"coarse_labels": coarse})
        out[f"{name}_data"], out[f"{name}_labels"] = data, np.array(fine)
    _dump(folder / "meta", {b"fine_label_names": [b"f%d" % i for i in range(100)]})
    return out


def write_svhn(root: Path, n: int = 30, seed: int = 2) -> dict:
    """test_32x32.mat (MATLAB v5): X uint8 [32, 32, 3, n], y [n, 1] in 1..10 (10 = digit 0)."""
    from scipy.io import savemat

    rng = _rng(seed)
    x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    y = rng.integers(1, 11, (n, 1)).astype(np.uint8)
    root.mkdir(parents=True, exist_ok=True)
    savemat(root / "test_32x32.mat", {"X": x, "y": y})
    return {"X": x, "y": y}


def write_tiny_imagenet(root: Path, classes: int = 3, per_class: int = 4, val: int = 6) -> dict:
    """tiny-imagenet-200/{wnids.txt, train/<wnid>/images/<wnid>_<i>.JPEG, val/images/*.JPEG,
    val/val_annotations.txt (file, wnid, box)}: 64x64 RGB JPEGs (one grey-scale, as in the
    real set)."""
    from PIL import Image

    rng, folder = _rng(3), root / "tiny-imagenet-200"
    wnids = [f"n{9000 + i:08d}" for i in reversed(range(classes))]  # unsorted on purpose
    (folder / "val/images").mkdir(parents=True, exist_ok=True)
    (folder / "wnids.txt").write_text("\n".join(wnids) + "\n")
    for wnid in wnids:
        images = folder / "train" / wnid / "images"
        images.mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(images / f"{wnid}_{i}.JPEG", quality=95)
    lines, val_wnids = [], []
    for i in range(val):
        wnid = wnids[i % classes]
        pixels = rng.integers(0, 256, (64, 64), dtype=np.uint8)
        image = (
            Image.fromarray(pixels, "L") if i == 0 else Image.fromarray(np.stack([pixels] * 3, -1))
        )
        image.save(folder / "val/images" / f"val_{i}.JPEG", quality=95)
        lines.append(f"val_{i}.JPEG\t{wnid}\t0\t0\t63\t63")
        val_wnids.append(wnid)
    (folder / "val/val_annotations.txt").write_text("\n".join(lines) + "\n")
    return {"wnids": wnids, "val_wnids": val_wnids}


def write_cifar10_c(root: Path, corruptions=("gaussian_noise", "fog"), per: int = 4) -> dict:
    """CIFAR-10-C/<corruption>.npy uint8 [5·per, 32, 32, 3] (severity s in rows
    [per·(s−1), per·s)) and labels.npy uint8 [5·per] (the test labels, repeated)."""
    rng, folder = _rng(4), root / "CIFAR-10-C"
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in corruptions:
        out[name] = rng.integers(0, 256, (5 * per, 32, 32, 3), dtype=np.uint8)
        np.save(folder / f"{name}.npy", out[name])
    out["labels"] = np.tile(rng.integers(0, 10, per).astype(np.uint8), 5)
    np.save(folder / "labels.npy", out["labels"])
    return out


def _dump(path: Path, obj: dict) -> None:
    with open(path, "wb") as handle:
        pickle.dump(obj, handle, protocol=2)
