"""Tiny-ImageNet-200 (Stanford CS231n) from its standard folder layout.

200 classes (``wnids.txt``, indexed in sorted order as torchvision's ImageFolder does), 500
training JPEGs each (``train/<wnid>/images``), and 10,000 labelled ``val`` images
(``val/val_annotations.txt``), which are the test split here as in every reference; the val
split is held out of the training images (90,000 / 10,000, drawn with the references' CIFAR
shuffle, ``calibexp.data.bundle.reference_split``), so temperature scaling does not see the test
images (torrvision/focal_calibration holds none out and fits T on those 10,000 test images,
which leaks). 64x64 RGB, ImageNet normalisation, crop(pad 4) + flip.

The JPEGs are decoded once and cached as uint8 next to them (``calibexp-uint8.npz``, ~1.2 GB)
when the folder is writable; later runs load the cache in seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from calibexp.data.augment import crop_and_flip
from calibexp.data.bundle import DataBundle, HeldOutSplit, held_out_bundle
from calibexp.data.files import damaged, missing, read_image_folder, writable
from calibexp.data.registry import DATASETS

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
FOLDER = "tiny-imagenet-200"
SOURCE = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
LAYOUT = (
    f"{FOLDER}/{{wnids.txt, train/<wnid>/images/*.JPEG, val/images/*.JPEG, "
    "val/val_annotations.txt}"
)
CACHE = "calibexp-uint8.npz"


def _listing(folder: Path) -> tuple[list[str], list[Path], list[int], list[Path], list[int]]:
    for needed in ("wnids.txt", "train", "val/images", "val/val_annotations.txt"):
        if not (folder / needed).exists():
            missing("tiny_imagenet", folder / needed, LAYOUT, SOURCE)
    wnids = sorted(w for w in (folder / "wnids.txt").read_text().split() if w)
    index = {w: i for i, w in enumerate(wnids)}
    train_paths, train_labels = [], []
    for wnid in wnids:
        images = sorted((folder / "train" / wnid / "images").glob("*.JPEG"))
        if not images:
            missing("tiny_imagenet", folder / "train" / wnid / "images", LAYOUT, SOURCE)
        train_paths += images
        train_labels += [index[wnid]] * len(images)
    test_paths, test_labels = [], []
    annotations = folder / "val/val_annotations.txt"
    for number, line in enumerate(annotations.read_text().splitlines(), 1):
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in index:
            raise damaged("tiny_imagenet", annotations, f"line {number} has no known wnid")
        test_paths.append(folder / "val/images" / fields[0])
        test_labels.append(index[fields[1]])
    return wnids, train_paths, train_labels, test_paths, test_labels


def _decoded(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    wnids, train_paths, train_labels, test_paths, test_labels = _listing(folder)
    cache = folder / CACHE
    if cache.exists():
        with np.load(cache) as stored:
            if len(stored["train_labels"]) == len(train_paths) and len(
                stored["test_labels"]
            ) == len(test_paths):
                return (
                    stored["train_images"],
                    stored["train_labels"],
                    stored["test_images"],
                    stored["test_labels"],
                    len(wnids),
                )
    arrays = (
        read_image_folder("tiny_imagenet", train_paths, 64),
        np.asarray(train_labels, dtype=np.int64),
        read_image_folder("tiny_imagenet", test_paths, 64),
        np.asarray(test_labels, dtype=np.int64),
    )
    if writable(folder):
        partial = folder / f".{CACHE}.partial.npz"
        np.savez(
            partial,
            train_images=arrays[0],
            train_labels=arrays[1],
            test_images=arrays[2],
            test_labels=arrays[3],
        )
        partial.replace(cache)
    return (*arrays, len(wnids))


@DATASETS.register("tiny_imagenet", robustness=("image_patches",))
def tiny_imagenet(
    *,
    root: str = "data",
    val_size: int = 10000,
    split_seed: int = 1,
    split: HeldOutSplit = "reference",
    meta_val_size: int = 0,
) -> DataBundle:
    """Tiny-ImageNet: 90,000 / 10,000 / 10,000 (the official val as test), 200 classes."""
    folder = Path(root).expanduser() / FOLDER
    train_images, train_labels, test_images, test_labels, num_classes = _decoded(folder)
    return held_out_bundle(
        "tiny_imagenet",
        (train_images, train_labels),
        (test_images, test_labels),
        num_classes=num_classes,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        val_size=val_size,
        split_seed=split_seed,
        split=split,
        meta_val_size=meta_val_size,
        train_augment=crop_and_flip(4),
    )
