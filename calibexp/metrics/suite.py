"""One call computes every metric of a split: ``{"acc": ..., "nll": ..., "ece_15": ...}``."""

from __future__ import annotations

import torch

from calibexp.metrics.predictions import Predictions
from calibexp.metrics.registry import METRICS

# Metrics logged every epoch on val, and on test before/after calibration at the end of a run.
DEFAULT_SUITE = (
    "acc",
    "nll",
    "brier",
    "conf",
    "ece",
    "adaece",
    "classece",
    "mce",
    "ece_over",
    "ece_under",
    "smece",
)
# metrics whose bin count is part of the logged name (ece_15, adaece_15, ...)
BINNED = ("ece", "adaece", "classece", "mce", "ece_over", "ece_under")


def metric_suite(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    bins: int = 15,
    names: tuple[str, ...] = DEFAULT_SUITE,
) -> dict[str, float]:
    return suite_of(Predictions(logits, targets), bins=bins, names=names)


def suite_of(
    p: Predictions, *, bins: int = 15, names: tuple[str, ...] = DEFAULT_SUITE
) -> dict[str, float]:
    """The suite on predictions already wrapped (a reliability diagram of the same ``p`` then
    reuses its softmax, order and smECE bandwidth)."""
    values: dict[str, torch.Tensor] = {}
    for name in names:
        if name in BINNED:
            values[f"{name}_{bins}"] = METRICS.build(name, p, bins=bins)
        else:
            values[name] = METRICS.build(name, p)
    # One device->host transfer for the whole suite.
    host = torch.stack([v.float() for v in values.values()]).tolist()
    return dict(zip(values, host))
