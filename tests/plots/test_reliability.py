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
    ReliabilityFrames,
    figure_pixels,
    plot_reliability,
    plot_reliability_grid,
    prepare_reliability,
)
from calibexp.plots.reliability import (
    DPI,
    MAX_COLUMNS,
    MIN_OPACITY,
    MIN_SUPPORT,
    OVER,
    PANEL_SIZE,
    UNDER,
)


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


def reliability_axes(fig):
    return [ax for ax in fig.axes if ax.get_ylabel() == "accuracy"]


def histogram_axes(fig):
    return [ax for ax in fig.axes if ax.get_ylabel() == "samples"]


def test_drawing_shows_its_data():
    z, y = over_confident()
    before, after = prepare_reliability(z, y), prepare_reliability(z / 2.0, y)
    fig = plot_reliability_grid([(before, "before"), (after, "after")], "run")
    tops = reliability_axes(fig)
    assert len(fig.axes) == 4 and len(tops) == 2
    for ax, data, title in zip(tops, (before, after), ("before", "after")):
        heading = ax.get_title()
        assert heading.startswith(title)
        assert f"ECE {100 * data.ece:.2f}%" in heading
        assert f"smECE {100 * data.smece:.2f}%" in heading
        # one gap bar per non-empty bin, vermilion // where over-confident, blue \\ where under
        gaps = [bar for bar in ax.patches if bar.get_visible() and bar.get_hatch()]
        colours = [(to_hex(bar.get_edgecolor()[:3]).upper(), bar.get_hatch()) for bar in gaps]
        over = sum(
            c > 0 and conf > acc
            for c, conf, acc in zip(data.counts, data.confidence, data.accuracy)
        )
        under = sum(
            c > 0 and conf <= acc
            for c, conf, acc in zip(data.counts, data.confidence, data.accuracy)
        )
        assert colours.count((OVER, "//")) == over and colours.count((UNDER, "\\\\")) == under
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[:3] == [
        "accuracy per bin, opacity ∝ √count",
        "gap: over-confident",
        "gap: under-confident",
    ]
    assert gap_directions(before)[0] > gap_directions(before)[1]  # sharpened: over-confident
    pixels = figure_pixels(fig)
    assert pixels.dtype == np.uint8 and pixels.shape[2] == 3
    assert pixels.shape[1] == round(2 * PANEL_SIZE[0] * DPI)
    assert figure_pixels(plot_reliability(before)).shape[1] == round(PANEL_SIZE[0] * DPI)


def sparse_tail(seed: int = 0):
    """400 confident, mostly right predictions and 3 of confidence ~0.5, all wrong: the sparse
    bin that, drawn at full height, made a calibrated model look miscalibrated."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (403,), generator=gen)
    z = torch.zeros(403, 10)
    z[torch.arange(400), y[:400]] = 6.0  # confidence e^6 / (e^6 + 9) = 0.978
    z[400:, 0], z[400:, 1] = 2.0, 2.0  # confidence ~0.45 on class 0 or 1
    y[400:] = 5
    return z, y


def test_bar_opacity_follows_the_bins_share_of_the_samples():
    data = prepare_reliability(*sparse_tail())
    counts = np.array(data.counts)
    (top,) = reliability_axes(plot_reliability(data))
    accuracy_bars = top.patches[: len(counts)]  # the accuracy bars come first, one per bin
    alphas = np.array([bar.get_alpha() for bar in accuracy_bars])
    full = counts.argmax()
    assert alphas[full] == pytest.approx(1.0)
    sparse = int(np.flatnonzero((counts > 0) & (counts < 10))[0])
    expected = MIN_OPACITY + (1 - MIN_OPACITY) * np.sqrt(counts[sparse] / counts[full])
    assert alphas[sparse] == pytest.approx(expected) and alphas[sparse] < 0.25
    assert all(alphas[counts == 0] == 0)


def test_histogram_is_logarithmic_and_labels_each_bins_count():
    data = prepare_reliability(*sparse_tail())
    (bottom,) = histogram_axes(plot_reliability(data))
    assert bottom.get_yscale() == "log"
    labels = [int(t.get_text()) for t in bottom.texts if t.get_text()]
    assert labels == [c for c in data.counts if c]  # 3 and 400, left to right
    low, high = bottom.get_ylim()
    assert low < 1 and high > data.n  # a bin of one sample still has a visible bar


def test_histogram_ticks_are_plain_numbers_never_mathtext():
    """The log axis's default labels are mathtext ("$10^{2}$"), whose parser costs ~0.23 s to
    build in each process, the bulk of the first frame of a run's image series."""
    fig = plot_reliability(prepare_reliability(*sparse_tail()))
    figure_pixels(fig)  # tick labels are set at draw time
    (bottom,) = histogram_axes(fig)
    low, high = bottom.get_ylim()
    shown = [t for t in bottom.yaxis.get_major_ticks() if low <= t.get_loc() <= high]
    assert [t.label1.get_text() for t in shown] == [f"{t.get_loc():g}" for t in shown]
    assert {"1", "1000"} <= {t.label1.get_text() for t in shown}
    assert [t.get_text() for t in bottom.yaxis.get_ticklabels(minor=True) if t.get_text()] == []


def test_smooth_curve_is_drawn_only_where_samples_support_it():
    data = prepare_reliability(*sparse_tail())
    mesh, mu = data.supported_curve()
    local = data.n * np.asarray(data.smooth["density"]) * 2 * data.sigma
    np.testing.assert_array_equal(np.isnan(mu), local < MIN_SUPPORT)
    # supported near the 400 confident samples, not between them and the 3 sparse ones
    assert not np.isnan(mu[np.argmin(abs(mesh - 0.978))])
    assert np.isnan(mu[np.argmin(abs(mesh - 0.7))]) and np.isnan(mu[np.argmin(abs(mesh - 0.1))])
    drawn = ~np.isnan(mu)
    np.testing.assert_allclose(mu[drawn], np.asarray(data.smooth["accuracy"])[drawn])


def test_legend_lies_below_the_axes_off_the_data():
    fig = plot_reliability(prepare_reliability(*over_confident(n=500)))
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    legend = fig.legends[0].get_window_extent(renderer)
    for ax in fig.axes:
        assert legend.y1 < ax.get_window_extent(renderer).y0


def test_greyscale_keeps_the_gap_directions_apart():
    """Over- and under-confident gaps differ by hatch direction, not only by hue."""
    z, y = over_confident()
    mixed = prepare_reliability(z / 2.0, y)  # halfway: 9 bins over-, 4 under-confident
    (top,) = reliability_axes(plot_reliability(mixed))
    hatches = {bar.get_hatch() for bar in top.patches if bar.get_visible() and bar.get_hatch()}
    assert hatches == {"//", "\\\\"}


@pytest.mark.parametrize("n_panels, shape", [(1, (1, 1)), (2, (1, 2)), (3, (2, 2)), (5, (3, 2))])
def test_several_panels_make_a_grid_two_across(n_panels, shape):
    data = prepare_reliability(*over_confident(n=500))
    fig = plot_reliability_grid([(data, f"p{i}") for i in range(n_panels)])
    tops = reliability_axes(fig)
    rows = len({round(ax.get_position().y0, 4) for ax in tops})
    columns = len({round(ax.get_position().x0, 4) for ax in tops})
    assert (rows, columns) == shape and len(tops) == n_panels
    assert figure_pixels(fig).shape[1] == round(min(n_panels, MAX_COLUMNS) * PANEL_SIZE[0] * DPI)


def test_frames_draw_what_a_fresh_figure_draws():
    """``ReliabilityFrames`` re-draws only the changing artists over a cached background; every
    frame must match a figure drawn from scratch for the same data (up to the few pixels where
    a bar edge meets an axis spine, drawn in the other order)."""
    frames = ReliabilityFrames()
    series = [prepare_reliability(*over_confident(n=450, seed=s)) for s in range(3)]
    series.append(prepare_reliability(*sparse_tail()))  # different N: a new background
    for i, data in enumerate(series):
        title = f"val after epoch {i + 1}/4 (step {i}, 0-based)"
        fresh = figure_pixels(plot_reliability(data, title))
        frame = frames.pixels(data, title)
        assert frame.shape == fresh.shape
        assert (frame != fresh).any(axis=2).mean() < 0.01
