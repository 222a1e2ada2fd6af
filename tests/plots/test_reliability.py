"""Reliability diagram data against the metrics and relplot, and the drawing against its data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import relplot
import torch
from matplotlib.colors import to_hex

from calibexp.metrics import Predictions, metric_suite
from calibexp.plots import (
    ReliabilityData,
    figure_pixels,
    plot_reliability,
    plot_reliability_row,
    prepare_reliability,
)
from calibexp.plots.reliability import DPI, OVER, PANEL_SIZE, UNDER


def over_confident(n: int = 3000, k: int = 10, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, k, generator=gen) * 2
    y = torch.multinomial(torch.softmax(z, 1), 1, generator=gen).squeeze(1)
    return z * 2.0, y  # sharpened: over-confident


def test_bins_agree_with_the_metrics_and_a_direct_count():
    z, y = over_confident()
    data = prepare_reliability(z, y, bins=15)
    p = Predictions(z, y)
    conf, acc = p.confidence.double().numpy(), p.correct.double().numpy()
    edges = torch.linspace(0, 1, 16).numpy()
    for m, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        member = (p.confidence.numpy() > lo) & (p.confidence.numpy() <= hi)
        assert data.counts[m] == member.sum()
        if member.any():
            assert data.accuracy[m] == pytest.approx(acc[member].mean(), abs=1e-12)
            assert data.confidence[m] == pytest.approx(conf[member].mean(), abs=1e-12)
    assert sum(data.counts) == data.n == len(y)
    suite = metric_suite(z, y)
    assert data.ece == pytest.approx(suite["ece_15"], abs=1e-6)
    assert data.smece == pytest.approx(suite["smece"], abs=1e-6)
    assert data.accuracy_overall == pytest.approx(suite["acc"])


def test_smooth_curve_is_relplots():
    z, y = over_confident(n=2000, seed=1)
    data = prepare_reliability(z, y)
    p = Predictions(z, y)
    f, hit = p.confidence.double().numpy(), p.correct.double().numpy()
    reference = relplot.prepare_rel_diagram(f, hit, plot_confidence_band=False, report_CE_std=False)
    assert data.sigma == pytest.approx(reference["sigma"])
    np.testing.assert_allclose(data.smooth["mesh"], reference["mesh"], atol=1e-12)
    np.testing.assert_allclose(data.smooth["accuracy"], reference["mu"], atol=1e-6)
    assert data.smece == pytest.approx(relplot.smECE(f, hit), abs=1e-6)
    # the density of confidences integrates to ~1 over [0, 1] (reflected kernel: no mass lost)
    assert np.trapezoid(data.smooth["density"], data.smooth["mesh"]) == pytest.approx(1, abs=0.02)


def test_data_survives_json():
    data = prepare_reliability(*over_confident(n=500))
    assert ReliabilityData.from_dict(json.loads(json.dumps(data.to_dict()))) == data


def gap_directions(data: ReliabilityData) -> tuple[int, int]:
    """(over-confident, under-confident) non-empty bins."""
    bins = [(conf > acc) for c, conf, acc in zip(data.counts, data.confidence, data.accuracy) if c]
    return sum(bins), len(bins) - sum(bins)


def test_drawing_shows_its_data():
    z, y = over_confident()
    before, after = prepare_reliability(z, y), prepare_reliability(z / 2.0, y)
    fig = plot_reliability_row([(before, "before"), (after, "after")], "run")
    tops = [ax for ax in fig.axes if ax.get_ylabel() == "accuracy"]
    assert len(fig.axes) == 4 and len(tops) == 2
    for ax, data, title in zip(tops, (before, after), ("before", "after")):
        heading = ax.get_title()
        assert heading.startswith(title)
        assert f"ECE {100 * data.ece:.2f}%" in heading
        assert f"smECE {100 * data.smece:.2f}%" in heading
        # one gap bar per non-empty bin, vermilion where over-confident, blue where under
        colours = [to_hex(bar.get_facecolor()[:3]).upper() for bar in ax.patches]
        over = sum(
            c > 0 and conf > acc
            for c, conf, acc in zip(data.counts, data.confidence, data.accuracy)
        )
        under = sum(
            c > 0 and conf <= acc
            for c, conf, acc in zip(data.counts, data.confidence, data.accuracy)
        )
        assert colours.count(OVER) == over and colours.count(UNDER) == under
        assert [t.get_text() for t in ax.get_legend().get_texts()][:3] == [
            "accuracy per bin",
            "gap: over-confident",
            "gap: under-confident",
        ]
    assert gap_directions(before)[0] > gap_directions(before)[1]  # sharpened: over-confident
    pixels = figure_pixels(fig)
    assert pixels.dtype == np.uint8 and pixels.shape[2] == 3
    assert pixels.shape[1] == round(2 * PANEL_SIZE[0] * DPI)
    assert figure_pixels(plot_reliability(before)).shape[1] == round(PANEL_SIZE[0] * DPI)
