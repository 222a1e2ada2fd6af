"""One call computes every metric of a split: ``{"acc": ..., "nll": ..., "ece_15": ...}``."""

from __future__ import annotations

import torch

from calibexp.metrics.predictions import Predictions
from calibexp.metrics.registry import METRICS, logged_name, metric_key

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


def suite_keys(split: str, bins: int, names: tuple[str, ...] = DEFAULT_SUITE) -> list[str]:
    """The metric keys ``suite_of`` yields for ``split`` (``val/acc``, ..., ``val/ece_15``)."""
    return [metric_key(split, name, bins) for name in names]


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
        binned = METRICS.info(name)["binned"]
        values[logged_name(name, bins)] = METRICS.build(
            name, p, **({"bins": bins} if binned else {})
        )
    # One device->host transfer for the whole suite.
    host = torch.stack([v.float() for v in values.values()]).tolist()
    return dict(zip(values, host))
