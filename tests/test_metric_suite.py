"""The calibration metric suite against independent implementations: relplot (smECE),
torchmetrics (ECE, MCE) and torrvision's definitions written out here (adaptive and classwise
ECE, MCE)."""

from __future__ import annotations

import numpy as np
import pytest
import relplot
import torch
from torchmetrics.classification import MulticlassCalibrationError

from calibexp.metrics import METRICS, Predictions, metric_suite


def logits_for(kind: str, n: int, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, k, generator=gen) * 3
    y = torch.randint(0, k, (n,), generator=gen)
    if kind == "all_correct":
        y = z.argmax(1)
    elif kind == "all_wrong":
        y = (z.argmax(1) + 1) % k
    elif kind == "ties":  # many identical rows: tied confidences
        z = z[torch.randint(0, 5, (n,), generator=gen)]
    elif kind == "confident":  # confidences of exactly 1.0 in float32
        z[:, 0] += 40
    return z, y


KINDS = ["random", "all_correct", "all_wrong", "ties", "confident"]
SHAPES = [(2, 500), (10, 2000), (100, 3000), (200, 1500)]


def adaece_reference(conf: np.ndarray, acc: np.ndarray, bins: int = 15) -> float:
    """torrvision's AdaptiveECELoss: equal-mass edges by np.interp, membership (lo, hi]."""
    n = len(conf)
    edges = np.interp(np.linspace(0, n, bins + 1), np.arange(n), np.sort(conf))
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        member = (conf > lo) & (conf <= hi)
        if member.any():
            total += member.mean() * abs(acc[member].mean() - conf[member].mean())
    return total


def classece_reference(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """torrvision's ClasswiseECELoss, class by class and bin by bin."""
    n, k = probs.shape
    edges = np.linspace(0, 1, bins + 1)
    per_class = []
    for c in range(k):
        p, hit = probs[:, c], (labels == c).astype(float)
        total = 0.0
        for lo, hi in zip(edges[:-1], edges[1:]):
            member = (p > lo) & (p <= hi)
            if member.any():
                total += member.mean() * abs(hit[member].mean() - p[member].mean())
        per_class.append(total)
    return float(np.mean(per_class))


def mce_reference(conf: np.ndarray, acc: np.ndarray, bins: int = 15) -> float:
    edges = np.linspace(0, 1, bins + 1)
    gaps = [
        abs(acc[m].mean() - conf[m].mean())
        for lo, hi in zip(edges[:-1], edges[1:])
        if (m := (conf > lo) & (conf <= hi)).any()
    ]
    return max(gaps)


@pytest.mark.parametrize("k, n", SHAPES)
@pytest.mark.parametrize("kind", KINDS)
def test_suite_against_independent_implementations(kind, k, n):
    z, y = logits_for(kind, n, k, seed=k + n)
    p = Predictions(z, y)
    got = metric_suite(z, y)
    conf = p.confidence.double().numpy()
    acc = p.correct.double().numpy()
    probs = p.probs.double().numpy()
    assert got["smece"] == pytest.approx(relplot.smECE(conf, acc), abs=1e-3)
    assert got["adaece_15"] == pytest.approx(adaece_reference(conf, acc), abs=1e-6)
    assert got["classece_15"] == pytest.approx(classece_reference(probs, y.numpy()), abs=1e-6)
    assert got["mce_15"] == pytest.approx(mce_reference(conf, acc), abs=1e-6)
    assert got["ece_over_15"] + got["ece_under_15"] == pytest.approx(got["ece_15"], abs=1e-6)
    assert got["conf"] == pytest.approx(conf.mean(), abs=1e-6)
    if kind == "all_correct":
        assert got["ece_over_15"] == 0.0  # accuracy 1 in every bin: only under-confidence
    if kind == "all_wrong":
        assert got["ece_under_15"] == 0.0


@pytest.mark.parametrize("k, n", SHAPES)
@pytest.mark.parametrize("kind", ["random", "all_correct", "all_wrong", "ties"])
def test_ece_and_mce_equal_torchmetrics(kind, k, n):
    # torchmetrics bins [lo, hi) with conf = 1 in a bin of its own, torrvision (lo, hi]: they
    # agree whenever no confidence lies exactly on an edge, as here.
    z, y = logits_for(kind, n, k, seed=k * n)
    got = metric_suite(z, y)
    probs = torch.softmax(z, 1)
    conf = probs.max(1).values
    assert not torch.isin(conf, torch.linspace(0, 1, 16)).any()
    for norm, key in (("l1", "ece_15"), ("max", "mce_15")):
        oracle = MulticlassCalibrationError(num_classes=k, n_bins=15, norm=norm)
        # torchmetrics accumulates its bins in float32 (even for float64 input): on 3,000 tied
        # confidences that alone is 1.3e-6 off the exact value, which ours (float64 sums) and the
        # float64 reference in test_metrics.py hit to 1e-9. Hence the relative term.
        assert got[key] == pytest.approx(oracle(probs, y).item(), rel=1e-5, abs=1e-6), key


def test_perfectly_calibrated_data_has_small_ece():
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(1_000_000, 10, generator=gen) * 2
    y = torch.multinomial(torch.softmax(z, 1), 1, generator=gen).squeeze(1)
    got = metric_suite(z, y)
    assert got["ece_15"] < 0.005 and got["adaece_15"] < 0.005 and got["smece"] < 0.01


def test_metrics_run_on_any_device_dtype_input():
    z, y = logits_for("random", 300, 10, seed=1)
    a = metric_suite(z, y)
    b = metric_suite(z.double(), y)  # float64 in: computed on float32 logits all the same
    assert a == b
    assert set(METRICS.names()) >= {
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
    }
