"""Rotated digits: scikit-learn's handwritten digits rotated into named domains.

The Rotated-MNIST domain-generalisation benchmark (Ghifary et al., "Domain Generalization for
Object Recognition with Multi-task Autoencoders", ICCV 2015) shows the same digits at 0°, 15°,
…, 75°, one domain per angle; this is that construction on the embedded 8x8 digits
(``calibexp.data.digits``), so a domain-shift experiment runs anywhere with no download.

Each base digit keeps the split ``digits`` gives it (same positions for the same settings), so
no digit is in two splits at different angles. Train / val / meta-val hold the seen angles
(``train_angles``), test holds every angle: the held-out ones measure calibration under shift.
Within a split the samples are domain-major (all of ``angles[0]``, then the next, ...).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2.functional import rotate

from calibexp.data.bundle import DataBundle, Split, digest_indices, split_indices
from calibexp.data.digits import split_digits
from calibexp.data.registry import DATASETS
from calibexp.errors import require


def domain_split(parts: Sequence[tuple[int, Split]]) -> Split:
    """One Split of several domains, domain-major: ``(domain index, its samples)`` in order."""
    return Split(
        torch.cat([split.images for _, split in parts]),
        torch.cat([split.labels for _, split in parts]),
        torch.cat([torch.full((len(split),), d, dtype=torch.int64) for d, split in parts]),
    )


def domain_indices(**splits: Split | None) -> dict[str, np.ndarray]:
    """``<split>_domains``: each sample's domain index, for splits.npz (None splits left out)."""
    return {
        f"{name}_domains": split.domains.numpy()
        for name, split in splits.items()
        if split is not None and split.domains is not None
    }


@DATASETS.register("rotated_digits", robustness=("image_patches",))
def rotated_digits(
    *,
    angles: list[int] = [0, 15, 30, 45, 60, 75],  # noqa: B006 - copied into the schema
    train_angles: list[int] = [0, 15, 30, 45, 60],  # noqa: B006
    val_size: int = 450,
    test_size: int = 450,
    meta_val_size: int = 0,
    split_seed: int = 1,
) -> DataBundle:
    """Domains ``rot<angle>``; default 897·5 / 450·5 / 450·6 (``rot75`` held out)."""
    angles, train_angles = [int(a) for a in angles], [int(a) for a in train_angles]
    require(
        len(angles) > 0 and len(set(angles)) == len(angles),
        "data.angles",
        angles,
        "a non-empty list of distinct angles in degrees",
    )
    require(
        len(train_angles) > 0
        and len(set(train_angles)) == len(train_angles)
        and set(train_angles) <= set(angles),
        "data.train_angles",
        train_angles,
        f"a non-empty list of distinct angles from {angles}",
    )
    images, labels, (train_idx, val_idx, test_idx, meta_idx) = split_digits(
        val_size=val_size, test_size=test_size, split_seed=split_seed, meta_val_size=meta_val_size
    )
    base = torch.from_numpy(images)
    # Counter-clockwise for a positive angle, about the image centre, corners filled black;
    # torchvision's bilinear rotation of a CPU tensor is deterministic, and 0° is the identity.
    rotated = [
        rotate(base, float(a), interpolation=InterpolationMode.BILINEAR, fill=0) for a in angles
    ]
    labels_t = torch.from_numpy(labels)
    seen = [d for d, a in enumerate(angles) if a in train_angles]

    def split(idx: np.ndarray, domains: Sequence[int]) -> Split:
        pos = torch.from_numpy(idx)
        return domain_split([(d, Split(rotated[d][pos], labels_t[pos])) for d in domains])

    train, val = split(train_idx, seen), split(val_idx, seen)
    test = split(test_idx, range(len(angles)))
    meta_val = split(meta_idx, seen) if meta_val_size else None
    indices, _ = split_indices(train_idx, val_idx, test_idx, meta_idx)
    indices["angles"] = np.asarray(angles, dtype=np.int64)
    indices |= domain_indices(train=train, val=val, test=test, meta_val=meta_val)
    # mean/std over every seen angle's training pixels (the rotation's black corners included).
    train_pixels = train.images.double() / 255
    return DataBundle(
        name="rotated_digits",
        train=train,
        val=val,
        test=test,
        num_classes=10,
        mean=(float(train_pixels.mean()),),
        std=(float(train_pixels.std(correction=0)),),
        # positions, angles and which are seen: two choices of angles never share a digest
        split_digest=digest_indices(*indices.values()),
        indices=indices,
        meta_val=meta_val,
        domain_names=tuple(f"rot{a}" for a in angles),
        seen_domains=tuple(f"rot{angles[d]}" for d in seen),
    )
