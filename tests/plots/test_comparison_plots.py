"""The report's figures draw exactly the data they are given: bands are the mean ± sample std
per epoch over seeds, every method keeps its colour across blocks, the reliability matrix has
one panel per method and epoch whose bars are the logged bins (opacity by count), and drawing
in worker processes gives the same PNG bytes as drawing here."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from matplotlib.colors import to_rgba

from calibexp.plots import ReliabilityData
from calibexp.plots.comparison import band, plot_bands, plot_reliability_matrix
from calibexp.reports.figures import Drawing, _png
from tests.support import ROOT


def test_band_is_mean_and_sample_std_per_epoch():
    seeds = [[(0, 1.0), (1, 2.0), (2, 3.0)], [(0, 3.0), (1, 2.0)], [(0, 2.0), (1, 5.0)]]
    epochs, mean, std = band(seeds)
    assert list(epochs) == [0, 1, 2]
    assert mean == pytest.approx([2.0, 3.0, 3.0])
    assert std[0] == pytest.approx(1.0)  # [1, 3, 2]: sample std 1
    assert std[1] == pytest.approx(math.sqrt(3.0))  # [2, 2, 5]: var (1 + 1 + 4) / 2
    assert math.isnan(std[2])  # one seed logged epoch 2


def test_bands_draw_one_line_per_method_and_block_in_its_colour():
    curves = {
        "cifar10/resnet50": {"ce": {"val/nll": [[(0, 1.0), (1, 0.5)], [(0, 1.2), (1, 0.7)]]},
                             "focal": {"val/nll": [[(0, 0.9), (1, 0.4)]]}},
        "cifar10/wrn26_10": {"ce": {"val/nll": [[(0, 2.0), (1, 1.0)]]}},
    }  # fmt: skip
    fig = plot_bands(curves, ["val/nll"], "t")
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == [
        "val/nll — cifar10/resnet50",
        "val/nll — cifar10/wrn26_10",
    ]
    first = {line.get_label(): line for line in axes[0].get_lines()}
    assert list(first["ce"].get_ydata()) == pytest.approx([1.1, 0.6])
    assert list(first["focal"].get_ydata()) == pytest.approx([0.9, 0.4])
    (second,) = axes[1].get_lines()
    assert second.get_label() == "ce" and second.get_color() == first["ce"].get_color()
    assert list(second.get_ydata()) == pytest.approx([2.0, 1.0])


def data(counts, accuracy, confidence):
    edges = list(np.linspace(0, 1, len(counts) + 1))
    n = sum(counts)
    return ReliabilityData(edges, counts, accuracy, confidence, 0.05, 0.04, 0.1, 0.9, n)


def test_matrix_panels_draw_the_logged_bins():
    one = data([0, 10, 40], [0.0, 0.2, 0.9], [1 / 6, 0.5, 0.8])  # empty, over, under
    two = data([5, 5, 5], [0.1, 0.5, 0.9], [0.1, 0.5, 0.9])
    fig = plot_reliability_matrix(
        [
            ("ce", [(one, "epoch 0"), (two, "epoch 9")]),
            ("focal", [(two, "epoch 0"), (one, "epoch 9")]),
        ],
        "t",
    )
    panels = [ax for ax in fig.axes]
    assert len(panels) == 4
    ce0 = panels[0]
    bars, *gaps = ce0.collections
    opacity = one.opacity()
    assert opacity[0] == 0 and opacity[2] == 1  # the empty bin is invisible, the fullest full
    assert [c[3] for c in bars.get_facecolors()] == pytest.approx(list(opacity))
    heights = [path.vertices[:, 1].max() for path in bars.get_paths()]
    assert heights == pytest.approx([0.0, 0.2, 0.9])
    over, under = gaps
    assert over.get_hatch() == "//" and under.get_hatch() == "\\\\"
    (over_box,) = over.get_paths()  # bin 1: confidence 0.5 above accuracy 0.2
    assert over_box.vertices[:, 1].min() == pytest.approx(0.2)
    assert over_box.vertices[:, 1].max() == pytest.approx(0.5)
    assert over.get_facecolors()[0][3] == pytest.approx(0.45 * opacity[1])
    assert tuple(over.get_facecolors()[0][:3]) == pytest.approx(to_rgba("#D55E00")[:3])
    (under_box,) = under.get_paths()  # bin 2: accuracy 0.9 above confidence 0.8
    assert under_box.vertices[:, 1].min() == pytest.approx(0.8)
    assert "ECE 5.00%" in ce0.get_title() and "acc 90.0%" in ce0.get_title()
    assert panels[0].get_ylabel().startswith("ce") and panels[2].get_ylabel().startswith("focal")


def test_drawing_in_processes_gives_the_bytes_drawn_here():
    """In a fresh interpreter: Drawing forks its workers only while the process has one thread,
    and a test process that compiled a model or drew a progress bar has more (Inductor's
    compile pool, tqdm's monitor), so here it would rightly draw in-process."""
    done = subprocess.run(
        [sys.executable, "-c", f"import {__name__} as t; t.draw_both_ways()"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "forked and in-process drawings equal"


def draw_both_ways() -> None:
    one = data([3, 10, 40], [0.1, 0.2, 0.9], [1 / 6, 0.5, 0.8])
    job = (plot_reliability_matrix, ([("ce", [(one, "epoch 0")])], "t"))
    bands = (plot_bands, ({"": {"ce": {"val/nll": [[(0, 1.0), (1, 0.5)]]}}}, ["val/nll"], "t"))
    with Drawing() as drawing:
        assert drawing.pool is not None  # Linux, 2 cores, one thread: drawn in forked workers
        drawing.submit("a.png", job)
        drawing.submit("b.png", bands)
        drawn = drawing.pngs()
    assert drawn == {"a.png": _png(*job), "b.png": _png(*bands)}
    assert drawn["a.png"][:8] == b"\x89PNG\r\n\x1a\n"
    print("forked and in-process drawings equal")
