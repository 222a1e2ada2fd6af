"""Verify a dataset root: build the dataset exactly as a run would and report what was found
(the ``data`` entry point). Missing or damaged files raise the same one-line errors as a run."""

from __future__ import annotations

from typing import Any

import torch

from calibexp.data.bundle import DataBundle, Split
from calibexp.data.registry import DATASETS
from calibexp.data.shifted import SHIFTED
from calibexp.errors import CalibexpError
from calibexp.registry import closest


def describe_split(name: str, split: Split) -> str:
    counts = torch.bincount(split.labels)
    present = counts[counts > 0]
    return (
        f"  {name:5s} {len(split):7d} images  {tuple(split.images.shape[1:])} uint8  "
        f"labels {int(split.labels.min())}..{int(split.labels.max())}  "
        f"per class {int(present.min())}..{int(present.max())}"
    )


def check_dataset(name: str, params: dict[str, Any]) -> str:
    """Build ``name`` (a training dataset or an evaluation set) with ``params``; a report."""
    if name in DATASETS.names():
        bundle: DataBundle = DATASETS.build(name, **params)
        lines = [
            f"{name}: {bundle.num_classes} classes, normalisation mean {bundle.mean} "
            f"std {bundle.std}, split digest {bundle.split_digest}",
            *(describe_split(s, getattr(bundle, s)) for s in ("train", "val", "test")),
        ]
        return "\n".join(lines)
    if name in SHIFTED.names():
        return f"{name}:\n" + describe_split("test", SHIFTED.build(name, **params))
    known = DATASETS.names() + SHIFTED.names()
    raise CalibexpError(
        f"unknown dataset '{name}'{closest(name, known)}; known: {', '.join(known)}"
    )
