"""Readers for the real on-disk formats, each returning uint8 images [N, C, H, W] and int64
labels, and each failing with one line that names the path, the expected layout, where the files
come from and the config key to change (never a raw traceback, never a half-read dataset).

Layouts are torchvision's, so ``data.download: true`` (torchvision's downloader, where the
network allows) and files a user already has land in the same place under ``data.root``:

    <root>/cifar-10-batches-py/data_batch_1..5, test_batch      (python pickles)
    <root>/cifar-100-python/train, test                         (python pickles)
    <root>/tiny-imagenet-200/wnids.txt, train/<wnid>/images/*.JPEG,
                             val/images/*.JPEG, val/val_annotations.txt
    <root>/test_32x32.mat                                      (SVHN, MATLAB v5)
    <root>/CIFAR-10-C/<corruption>.npy, labels.npy             (uint8 [50000, 32, 32, 3])
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

from calibexp.errors import CalibexpError

ROOT_ENV = "CALIBEXP_DATA"  # the default of data.root in configs/_base_/datasets/*.yaml


def missing(dataset: str, path: Path, layout: str, source: str, download: bool = False) -> None:
    """Raise the one-line error for a dataset whose files are not where they should be."""
    fix = "set data.root (or the environment variable CALIBEXP_DATA)"
    if download:
        fix += " or data.download=true"
    raise CalibexpError(
        f"{dataset}: {path} not found; expected {layout} under data.root, from {source}; {fix}"
    )


def damaged(dataset: str, path: Path, problem: str) -> CalibexpError:
    return CalibexpError(
        f"{dataset}: {path} is damaged ({problem}); replace it with a fresh copy of the dataset"
    )


def read_cifar_batches(
    dataset: str, folder: Path, files: list[str], label_key: str
) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR python batches: dicts with b'data' uint8 [n, 3072] (channel-major 32x32) and a label
    list under ``label_key`` (b'labels' for CIFAR-10, b'fine_labels' for CIFAR-100)."""
    images, labels = [], []
    for name in files:
        path = folder / name
        try:
            with open(path, "rb") as handle:
                batch = pickle.load(handle, encoding="bytes")
        except FileNotFoundError:
            raise
        except Exception as err:  # noqa: BLE001 - truncated or not a pickle: same message
            raise damaged(
                dataset, path, f"not a readable CIFAR batch: {type(err).__name__}"
            ) from None
        if not isinstance(batch, dict) or b"data" not in batch or label_key.encode() not in batch:
            raise damaged(dataset, path, f"no b'data' and b'{label_key}' entries") from None
        data = np.asarray(batch[b"data"])
        label = np.asarray(batch[label_key.encode()], dtype=np.int64)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise damaged(
                dataset, path, f"data is {data.dtype} {data.shape}, expected uint8 [n, 3072]"
            )
        if len(label) != len(data):
            raise damaged(dataset, path, f"{len(data)} images but {len(label)} labels") from None
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(label)
    return np.concatenate(images), np.concatenate(labels)


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """SVHN's cropped-digits .mat: X uint8 [32, 32, 3, N], y [N, 1] with 10 meaning digit 0."""
    from scipy.io import loadmat

    try:
        mat = loadmat(path)
    except FileNotFoundError:
        raise
    except Exception as err:  # noqa: BLE001
        raise damaged("svhn", path, f"not a readable .mat file: {type(err).__name__}") from None
    if "X" not in mat or "y" not in mat:
        raise damaged("svhn", path, "no 'X' and 'y' arrays")
    x, y = mat["X"], np.asarray(mat["y"]).reshape(-1).astype(np.int64)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != len(y):
        raise damaged("svhn", path, f"X is {x.dtype} {x.shape}, expected uint8 [32, 32, 3, N]")
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)), np.where(y == 10, 0, y)


def read_npy(
    dataset: str, path: Path, shape_tail: tuple[int, ...], dtype: str | None
) -> np.ndarray:
    """A .npy array whose shape ends in ``shape_tail``, of ``dtype`` (None: any integer type)."""
    try:
        array = np.load(path, mmap_mode="r")
    except FileNotFoundError:
        raise
    except Exception as err:  # noqa: BLE001
        raise damaged(dataset, path, f"not a readable .npy file: {type(err).__name__}") from None
    right_type = array.dtype == dtype if dtype else array.dtype.kind in "ui"
    if not right_type or array.shape[1:] != shape_tail:
        raise damaged(
            dataset,
            path,
            f"{array.dtype} {array.shape}, expected {dtype or 'integer'} [N, *{shape_tail}]",
        )
    return np.asarray(array)


def read_image_folder(dataset: str, paths: list[Path], size: int) -> np.ndarray:
    """Decode RGB images of ``size`` x ``size`` into uint8 [N, 3, size, size] (once; the caller
    caches the result)."""
    from PIL import Image

    out = np.empty((len(paths), 3, size, size), dtype=np.uint8)
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"))
        except Exception as err:  # noqa: BLE001
            raise damaged(dataset, path, f"not a readable image: {type(err).__name__}") from None
        if pixels.shape != (size, size, 3):
            raise damaged(
                dataset, path, f"{pixels.shape[1]}x{pixels.shape[0]}, expected {size}x{size}"
            )
        out[i] = pixels.transpose(2, 0, 1)
    return out


def writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK)
