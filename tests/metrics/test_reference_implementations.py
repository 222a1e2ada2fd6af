"""The calibration metric suite against independent implementations: relplot (smECE),
torchmetrics (ECE, MCE) and torrvision's definitions written out here (adaptive and classwise
ECE, MCE)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import relplot
import torch
from sklearn.metrics import log_loss
from torchmetrics.classification import MulticlassCalibrationError
from torchmetrics.functional.classification.calibration_error import _ce_compute

from calibexp.metrics import METRICS, Predictions, metric_suite
from calibexp.metrics.calibration import ece
from tests.support.torrvision_reference import (
    adaece_reference,
    classece_reference,
    ece_reference,
    mce_reference,
)

EDGES = torch.linspace(0, 1, 16)  # float32, as torrvision and torchmetrics make them


def row_on_edge(edge: float, k: int) -> torch.Tensor | None:
    """Float32 logits [d, s, 0, ..., 0] whose top-label confidence, as calibexp computes it, is
    exactly ``edge`` in float32 (searched over ulps of d), or None."""
    target = torch.tensor(edge, dtype=torch.float32)
    for s in np.linspace(-3, 3, 61, dtype=np.float32):
        rest = math.exp(float(s)) + (k - 2)
        d = torch.tensor(math.log(edge * rest / (1 - edge)) if edge < 1 else 60.0)
        candidates = d + torch.arange(-200, 201) * torch.finfo(torch.float32).eps * d.abs()
        z = torch.zeros(len(candidates), k)
        z[:, 0], z[:, 1] = candidates, float(s)
        hit = (Predictions(z, z.argmax(1)).confidence == target) & (z.argmax(1) == 0)
        if hit.any():
            return z[hit.nonzero()[0, 0]]
    return None


def edge_logits(n: int, k: int, gen: torch.Generator) -> torch.Tensor:
    """Two thirds of the rows with a top-label confidence exactly on a bin edge (1.0 among them),
    the rest random. The edge rows keep class 0 on top: permuting a row's logits changes the
    summation order of its softmax and with it the last bit of the confidence."""
    rows = [r for e in EDGES[1:] if e > 1 / k and (r := row_on_edge(float(e), k)) is not None]
    assert len(rows) >= 8
    z = torch.randn(n, k, generator=gen) * 3
    on_edge = torch.rand(n, generator=gen) < 2 / 3
    z[on_edge] = torch.stack(rows)[
        torch.randint(0, len(rows), (int(on_edge.sum()),), generator=gen)
    ]
    return z


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
    elif kind == "edges":
        z = edge_logits(n, k, gen)
        y = torch.where(torch.rand(n, generator=gen) < 0.6, z.argmax(1), y)
    return z, y


KINDS = ["random", "all_correct", "all_wrong", "ties", "confident", "edges"]
SHAPES = [(2, 500), (10, 2000), (100, 3000), (200, 1500)]


@pytest.mark.parametrize("k, n", SHAPES)
@pytest.mark.parametrize("kind", KINDS)
def test_suite_against_independent_implementations(kind, k, n):
    z, y = logits_for(kind, n, k, seed=k + n)
    p = Predictions(z, y)
    got = metric_suite(z, y)
    conf = p.confidence.double().numpy()
    acc = p.correct.double().numpy()
    conf32, probs32 = p.confidence.numpy(), p.probs.numpy()
    assert got["smece"] == pytest.approx(relplot.smECE(conf, acc), abs=1e-3)
    assert got["ece_15"] == pytest.approx(ece_reference(conf32, acc), abs=1e-6)
    assert got["adaece_15"] == pytest.approx(adaece_reference(conf, acc), abs=1e-6)
    assert got["classece_15"] == pytest.approx(classece_reference(probs32, y.numpy()), abs=1e-6)
    assert got["mce_15"] == pytest.approx(mce_reference(conf32, acc), abs=1e-6)
    assert got["ece_over_15"] + got["ece_under_15"] == pytest.approx(got["ece_15"], abs=1e-6)
    assert got["conf"] == pytest.approx(conf.mean(), abs=1e-6)
    exact = torch.log_softmax(z.double(), 1).exp().numpy()
    if exact.min() > 1e-15:  # log_loss clips probabilities at float64's eps
        reference = log_loss(y.numpy(), exact, labels=list(range(k)))
    else:  # saturated rows: the exact float64 log-softmax instead
        reference = -torch.log_softmax(z.double(), 1)[torch.arange(n), y].mean().item()
    assert got["nll"] == pytest.approx(reference, rel=1e-6, abs=1e-6)
    if kind == "all_correct":
        assert got["ece_over_15"] == 0.0  # accuracy 1 in every bin: only under-confidence
    if kind == "all_wrong":
        assert got["ece_under_15"] == 0.0


def torchmetrics_exact(p: Predictions, norm: str, bins: int = 15) -> float:
    """torchmetrics' own calibration-error code (``_ce_compute``: its bucketize binning and its
    norms) on float64 confidences, with its float32 edges. The public metric casts to float32
    and accumulates its bins in float32, which on 3,000 tied confidences alone is 1.3e-6 off the
    exact value; this is the same computation without that rounding."""
    edges = torch.linspace(0, 1, bins + 1).double()  # the float32 edges, exactly
    return _ce_compute(
        p.confidence.double(), p.correct.double(), bin_boundaries=edges, norm=norm
    ).item()


@pytest.mark.parametrize("k, n", SHAPES)
@pytest.mark.parametrize("kind", ["random", "all_correct", "all_wrong", "ties"])
def test_ece_and_mce_equal_torchmetrics(kind, k, n):
    # Off the bin edges torchmetrics' [lo, hi) bins and torrvision's (lo, hi] ones are the same.
    z, y = logits_for(kind, n, k, seed=k * n)
    p = Predictions(z, y)
    assert not torch.isin(p.confidence, EDGES).any()
    got = metric_suite(z, y)
    for norm, key in (("l1", "ece_15"), ("max", "mce_15")):
        assert got[key] == pytest.approx(torchmetrics_exact(p, norm), abs=1e-6), key
        public = MulticlassCalibrationError(num_classes=k, n_bins=15, norm=norm)
        assert got[key] == pytest.approx(public(p.probs, y).item(), rel=1e-5, abs=1e-6), key


@pytest.mark.parametrize("k, n", SHAPES)
def test_ece_on_bin_edges(k, n):
    """Confidences exactly on the float32 edges m/15 and at 1.0. There the two references part:
    torrvision bins (lo, hi], torchmetrics [lo, hi) with 1.0 in a 16th bin of its own. calibexp's
    ``ece_15`` keeps torrvision's convention (the published numbers it reproduces use it);
    ``ece(..., closed="left")`` is torchmetrics' and matches it here to 1e-6."""
    z, y = logits_for("edges", n, k, seed=n + 7 * k)
    p = Predictions(z, y)
    on_edge = torch.isin(p.confidence, EDGES[1:])
    assert on_edge.float().mean() > 0.5 and (p.confidence == 1).any()
    got = metric_suite(z, y)["ece_15"]
    assert abs(got - ece_reference(p.confidence.numpy(), p.correct.double().numpy())) < 1e-6
    left = ece(p, bins=15, closed="left").item()
    assert abs(left - torchmetrics_exact(p, "l1")) < 1e-6
    public = MulticlassCalibrationError(num_classes=k, n_bins=15, norm="l1")(p.probs, y).item()
    assert left == pytest.approx(public, rel=1e-5, abs=1e-6)
    assert abs(got - left) > 1e-5  # 10x the tolerance: the data tells the conventions apart


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
