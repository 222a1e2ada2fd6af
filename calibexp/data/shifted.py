"""Evaluation-only image sets for robustness: out-of-distribution (SVHN) and corrupted
(CIFAR-10-C) inputs, each a ``Split`` of uint8 images to be normalised with the statistics of the
dataset the model was trained on (as torrvision/focal_calibration's OoD evaluation does).

Every builder takes the evaluated run's test split first (``reference``: the corruptions of
``digits_c`` are drawn on it, ``image_patches`` takes its image shape; the published sets ignore
it) and is registered with its ``kind``: ``ood`` (every sample is out of distribution) or
``shift`` (the test set under ``corruptions`` at severities 1-5, labels kept), with the
``extra`` corruptions evaluated only on request.

- ``svhn``: the SVHN cropped-digits **test** split (``test_32x32.mat``, 26,032 images; label 10
  is digit 0), the OoD set of every reference.
- ``cifar10_c``: one corruption at one severity of CIFAR-10-C (Hendrycks & Dietterich, ICLR
  2019): rows [10000·(s−1), 10000·s) of ``<corruption>.npy``, labels from ``labels.npy``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from calibexp.data.bundle import Split
from calibexp.data.files import damaged, missing, read_npy, read_svhn_mat
from calibexp.errors import CalibexpError, require
from calibexp.registry import Registry, closest

SHIFTED = Registry("evaluation set")
SEVERITIES = (1, 2, 3, 4, 5)

CORRUPTIONS = (  # the 15 benchmark corruptions
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
    "motion_blur", "zoom_blur", "snow", "frost", "fog", "brightness", "contrast",
    "elastic_transform", "pixelate", "jpeg_compression",
)  # fmt: skip
EXTRA_CORRUPTIONS = ("speckle_noise", "gaussian_blur", "spatter", "saturate")


@SHIFTED.register("svhn", kind="ood")
def svhn(reference: Split | None = None, *, root: str = "data", download: bool = False) -> Split:
    path = Path(root).expanduser() / "test_32x32.mat"
    if download and not path.exists():
        from torchvision.datasets import SVHN

        try:
            SVHN(str(path.parent), split="test", download=True)
        except Exception as err:  # noqa: BLE001
            raise CalibexpError(f"svhn: download into {path.parent} failed ({err})") from None
    if not path.exists():
        missing(
            "svhn", path, "test_32x32.mat", "http://ufldl.stanford.edu/housenumbers/", download=True
        )
    images, labels = read_svhn_mat(path)
    return Split(torch.from_numpy(images), torch.from_numpy(labels))


def require_corruption(name: str, where: str) -> None:
    """A CIFAR-10-C corruption name, or one line naming the nearest and every known one."""
    known = CORRUPTIONS + EXTRA_CORRUPTIONS
    if name not in known:
        raise CalibexpError(
            f"{where}: unknown corruption '{name}'{closest(name, known)}; known: {', '.join(known)}"
        )


@SHIFTED.register("cifar10_c", kind="shift", corruptions=CORRUPTIONS, extra=EXTRA_CORRUPTIONS)
def cifar10_c(
    reference: Split | None = None,
    *,
    root: str = "data",
    corruption: str = "gaussian_noise",
    severity: int = 5,
) -> Split:
    require_corruption(corruption, "cifar10_c")
    require(1 <= severity <= 5, "severity", severity, "an integer in 1..5")
    folder = Path(root).expanduser() / "CIFAR-10-C"
    source = "https://zenodo.org/record/2535967 (CIFAR-10-C.tar)"
    for name in (f"{corruption}.npy", "labels.npy"):
        if not (folder / name).exists():
            missing("cifar10_c", folder / name, "CIFAR-10-C/{<corruption>.npy, labels.npy}", source)
    images = read_npy("cifar10_c", folder / f"{corruption}.npy", (32, 32, 3), "uint8")
    labels = read_npy("cifar10_c", folder / "labels.npy", (), None)
    if len(images) != len(labels) or len(images) % 5:
        raise damaged(
            "cifar10_c", folder / f"{corruption}.npy", f"{len(images)} images, {len(labels)} labels"
        )
    per = len(images) // 5  # 10,000 in the published files
    rows = slice(per * (severity - 1), per * severity)
    chosen = torch.from_numpy(images[rows].transpose(0, 3, 1, 2).copy())
    return Split(chosen, torch.from_numpy(labels[rows].astype("int64")))
