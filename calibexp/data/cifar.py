"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009) from the python pickle batches.

Train / val held out of the 50,000 training images exactly as the references do
(``data.split: reference``, ``calibexp.data.bundle.reference_split``: 45,000 / 5,000, torrvision's
``valid_size=0.1, random_seed=1``; with ``meta_val_size`` 5,000, meta-calibration's 40,000 /
5,000 / 5,000); the 10,000 test images are the test split.

Normalisation: CIFAR-10 uses torrvision's statistics on every split. CIFAR-100 uses its own
statistics on every split by default (``normalisation: own``); ``normalisation: torrvision``
repeats torrvision's and meta-calibration's ``Data/cifar100.py``, which normalise train and val
with the CIFAR-10 statistics and *test* with ImageNet's (a bug their published CIFAR-100
numbers carry), for comparing with those numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from calibexp.data.augment import crop_and_flip
from calibexp.data.bundle import DataBundle, HeldOutSplit, held_out_bundle
from calibexp.data.files import missing, read_cifar_batches
from calibexp.data.registry import DATASETS
from calibexp.data.tiny_imagenet import IMAGENET_MEAN, IMAGENET_STD
from calibexp.errors import CalibexpError

# torrvision's CIFAR-10 statistics (its std is the per-image one most CIFAR code copies), and
# CIFAR-100's own per-pixel training statistics.
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
Cifar100Normalisation = Literal["own", "torrvision"]

LAYOUTS = {
    "cifar10": (
        "cifar-10-batches-py",
        [f"data_batch_{i}" for i in range(1, 6)],
        ["test_batch"],
        "labels",
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    ),
    "cifar100": (
        "cifar-100-python",
        ["train"],
        ["test"],
        "fine_labels",
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    ),
}


def _download(name: str, root: Path) -> None:
    from torchvision import datasets

    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    try:
        cls(str(root), train=True, download=True)
    except Exception as err:  # noqa: BLE001 - no network, a proxy, a full disk: one line
        raise CalibexpError(
            f"{name}: download into {root} failed ({err}); fetch it by hand"
        ) from None


def load_cifar(
    name: str,
    root: str,
    download: bool,
    *,
    val_size: int,
    split_seed: int,
    split: str,
    meta_val_size: int,
    normalisation: str = "own",
) -> DataBundle:
    folder_name, train_files, test_files, label_key, source = LAYOUTS[name]
    folder = Path(root).expanduser() / folder_name
    layout = f"{folder_name}/{{{','.join(train_files + test_files)}}}"
    if download and not all((folder / f).exists() for f in train_files + test_files):
        _download(name, Path(root).expanduser())
    for f in train_files + test_files:
        if not (folder / f).exists():
            missing(name, folder / f, layout, source, download=True)
    train_images, train_labels = read_cifar_batches(name, folder, train_files, label_key)
    test_images, test_labels = read_cifar_batches(name, folder, test_files, label_key)
    mean, std = (CIFAR10_MEAN, CIFAR10_STD) if name == "cifar10" else (CIFAR100_MEAN, CIFAR100_STD)
    test_normalisation = None
    if normalisation == "torrvision":  # train/val with CIFAR-10's statistics, test ImageNet's
        mean, std = CIFAR10_MEAN, CIFAR10_STD
        test_normalisation = (IMAGENET_MEAN, IMAGENET_STD)
    return held_out_bundle(
        name,
        (train_images, train_labels),
        (test_images, test_labels),
        num_classes=10 if name == "cifar10" else 100,
        mean=mean,
        std=std,
        val_size=val_size,
        split_seed=split_seed,
        split=split,
        meta_val_size=meta_val_size,
        train_augment=crop_and_flip(4),
        test_normalisation=test_normalisation,
    )


@DATASETS.register("cifar10", robustness=("svhn", "cifar10_c"))
def cifar10(
    *,
    root: str = "data",
    download: bool = False,
    val_size: int = 5000,
    split_seed: int = 1,
    split: HeldOutSplit = "reference",
    meta_val_size: int = 0,
) -> DataBundle:
    """CIFAR-10: 45,000 / 5,000 / 10,000, 10 classes, crop(pad 4) + flip."""
    return load_cifar(
        "cifar10",
        root,
        download,
        val_size=val_size,
        split_seed=split_seed,
        split=split,
        meta_val_size=meta_val_size,
    )


@DATASETS.register("cifar100", robustness=("svhn",))
def cifar100(
    *,
    root: str = "data",
    download: bool = False,
    val_size: int = 5000,
    split_seed: int = 1,
    split: HeldOutSplit = "reference",
    meta_val_size: int = 0,
    normalisation: Cifar100Normalisation = "own",
) -> DataBundle:
    """CIFAR-100 (fine labels): 45,000 / 5,000 / 10,000, 100 classes, crop(pad 4) + flip."""
    return load_cifar(
        "cifar100",
        root,
        download,
        val_size=val_size,
        split_seed=split_seed,
        split=split,
        meta_val_size=meta_val_size,
        normalisation=normalisation,
    )
