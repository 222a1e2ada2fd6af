"""CIFAR-10 with CIFAR-10-C corruptions as domains (Krizhevsky 2009; Hendrycks & Dietterich,
"Benchmarking Neural Network Robustness to Common Corruptions and Perturbations", ICLR 2019).

Domains: ``clean`` (always seen) and each corruption, named as in CIFAR-10-C. CIFAR-10-C only
corrupts CIFAR-10's 10,000 *test* images (row i of a severity block is test image i), so a
seen corruption's training data has to come from those rows. The rule:

- ``clean`` train / val / meta-val: CIFAR-10's training set held out exactly as ``cifar10``
  does (``data.split``, ``data.val_size``, ``data.meta_val_size``, ``data.split_seed``).
- One permutation of the test rows, ``default_rng(split_seed).permutation(10000)``
  (``bundle.seeded_split``), gives the first 5,000 as **test** positions and the next 5,000 as
  the **domain pool**, in order val, meta-val, train, in the clean split's proportions
  (val = round(5000 · val_size / 50000), meta-val likewise, train the rest).
- Every domain's test is those 5,000 positions: ``clean`` from CIFAR-10's test set, each
  corruption from its rows at ``severity``, so every domain is tested on the same underlying
  images and none of them was trained on in any domain.
- A seen corruption (``train_corruptions``) adds its pool rows to train / val / meta-val; a
  held-out one appears in test only.

Within a split the samples are domain-major (``clean``, then the corruptions in the order of
``corruptions``). splits.npz: ``train``/``val``/``meta_val`` (clean training-file positions),
``test`` (test positions), ``pool_train``/``pool_val``/``pool_meta_val`` (the rows of each seen
corruption's severity block) and ``<split>_domains``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from calibexp.data.bundle import DataBundle, HeldOutSplit, Split, digest_indices, seeded_split
from calibexp.data.cifar import load_cifar
from calibexp.data.files import damaged
from calibexp.data.registry import DATASETS
from calibexp.data.rotated_digits import domain_indices, domain_split
from calibexp.data.shifted import cifar10_c, require_corruption
from calibexp.errors import require


@DATASETS.register("cifar10_domains", robustness=("svhn",))
def cifar10_domains(
    *,
    root: str = "data",
    corruptions: list[str] = ["gaussian_noise", "motion_blur", "fog", "contrast"],  # noqa: B006
    train_corruptions: list[str] = ["gaussian_noise", "motion_blur"],  # noqa: B006
    severity: int = 3,
    val_size: int = 5000,
    meta_val_size: int = 0,
    split_seed: int = 1,
    split: HeldOutSplit = "reference",
) -> DataBundle:
    """Default: train 45,000 clean + 4,500 per seen corruption, val 5,000 + 500 each, test
    5,000 per domain (clean and four corruptions)."""
    corruptions, train_corruptions = list(corruptions), list(train_corruptions)
    for name in corruptions:
        require_corruption(name, "config key 'data.corruptions'")
    require(
        len(set(corruptions)) == len(corruptions),
        "data.corruptions",
        corruptions,
        "distinct CIFAR-10-C corruptions",
    )
    require(
        len(set(train_corruptions)) == len(train_corruptions)
        and set(train_corruptions) <= set(corruptions),
        "data.train_corruptions",
        train_corruptions,
        f"distinct corruptions from {corruptions}",
    )
    require(1 <= severity <= 5, "data.severity", severity, "an integer in 1..5")
    clean = load_cifar(
        "cifar10",
        root,
        False,
        val_size=val_size,
        split_seed=split_seed,
        split=split,
        meta_val_size=meta_val_size,
    )
    shifted = [cifar10_c(root=root, corruption=c, severity=severity) for c in corruptions]
    folder = Path(root).expanduser() / "CIFAR-10-C"
    for name, rows in zip(corruptions, shifted):
        # row i must be test image i corrupted, or "the same underlying images" would be false
        if len(rows) != len(clean.test) or not torch.equal(rows.labels, clean.test.labels):
            raise damaged(
                "cifar10_domains",
                folder / f"{name}.npy",
                f"its {len(rows)} rows at severity {severity} are not CIFAR-10's "
                f"{len(clean.test)} test images in order (labels.npy differs)",
            )
    n_rows, n_clean = len(clean.test), len(clean.train) + len(clean.val) + meta_val_size
    pool = n_rows - n_rows // 2
    pool_val = round(pool * val_size / n_clean)
    pool_meta = round(pool * meta_val_size / n_clean)
    test_pos, val_pos, meta_pos, train_pos = (
        torch.from_numpy(p)
        for p in seeded_split(
            n_rows, [n_rows // 2, pool_val, pool_meta, pool - pool_val - pool_meta], split_seed
        )
    )
    seen = [
        (d, rows)
        for d, (c, rows) in enumerate(zip(corruptions, shifted), 1)
        if c in train_corruptions
    ]

    def part(rows: Split, pos: torch.Tensor) -> Split:
        return Split(rows.images[pos], rows.labels[pos])

    train = domain_split([(0, clean.train), *((d, part(r, train_pos)) for d, r in seen)])
    val = domain_split([(0, clean.val), *((d, part(r, val_pos)) for d, r in seen)])
    meta_val = (
        domain_split([(0, clean.meta_val), *((d, part(r, meta_pos)) for d, r in seen)])
        if clean.meta_val is not None
        else None
    )
    test = domain_split([(d, part(r, test_pos)) for d, r in enumerate([clean.test, *shifted])])
    indices = {k: v for k, v in clean.indices.items() if k != "test"}
    indices |= {"test": test_pos.numpy(), "pool_train": train_pos.numpy()}
    indices |= {"pool_val": val_pos.numpy()}
    if meta_val is not None:
        indices["pool_meta_val"] = meta_pos.numpy()
    indices |= domain_indices(train=train, val=val, test=test, meta_val=meta_val)
    domain_names = ("clean", *corruptions)
    seen_domains = ("clean", *(c for c in corruptions if c in train_corruptions))
    # positions, domain assignment, and which corruptions at which severity
    named = f"{','.join(domain_names)}|{','.join(seen_domains)}|{severity}"
    digest = hashlib.sha256(f"{digest_indices(*indices.values())}|{named}".encode())
    return DataBundle(
        name="cifar10_domains",
        train=train,
        val=val,
        test=test,
        num_classes=10,
        mean=clean.mean,
        std=clean.std,
        split_digest=digest.hexdigest()[:16],
        train_augment=clean.train_augment,
        indices=indices,
        meta_val=meta_val,
        domain_names=domain_names,
        seen_domains=seen_domains,
    )
