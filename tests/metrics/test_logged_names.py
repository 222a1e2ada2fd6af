"""A metric's logged name comes from the registry alone: binned metrics carry their bin count,
the others their registered name; the suite logs exactly the keys ``suite_keys`` spells."""

from __future__ import annotations

import inspect

import pytest
import torch

from calibexp.metrics import METRICS, suite_of
from calibexp.metrics.predictions import Predictions
from calibexp.metrics.registry import logged_name, metric_key
from calibexp.metrics.suite import DEFAULT_SUITE, suite_keys


@pytest.mark.parametrize("name", METRICS.names())
def test_binned_is_declared_and_matches_the_signature(name):
    binned = METRICS.info(name)["binned"]
    assert isinstance(binned, bool)
    assert binned == ("bins" in inspect.signature(METRICS.get(name)).parameters)
    assert logged_name(name, 10) == (f"{name}_10" if binned else name)
    assert metric_key("test_ts", name, 7) == f"test_ts/{logged_name(name, 7)}"


@pytest.mark.parametrize("bins", [10, 15])
def test_the_suite_logs_what_suite_keys_spells(bins):
    generator = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(500, 4, generator=generator)
    targets = torch.randint(0, 4, (500,), generator=generator)
    p = Predictions(logits, targets)
    values = suite_of(p, bins=bins)
    assert [f"val/{k}" for k in values] == suite_keys("val", bins)
    assert len(values) == len(DEFAULT_SUITE)
    # the value under ece_<bins> is the ECE at that bin count, written out by hand
    confidence, predicted = torch.softmax(logits, 1).max(1)
    correct = (predicted == targets).double()
    ece = 0.0
    for m in range(bins):
        inside = (confidence > m / bins) & (confidence <= (m + 1) / bins)
        ece += abs((correct[inside] - confidence[inside].double()).sum().item()) / len(targets)
    assert values[f"ece_{bins}"] == pytest.approx(ece, abs=1e-6)
    assert f"ece_{25 - bins}" not in values
