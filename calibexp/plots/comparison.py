"""Figures that compare methods across seeds (``calibexp.reports``): one line per method, the
mean over its seeds per epoch, and a band of ± one sample standard deviation (ddof = 1) where at
least two seeds logged that epoch.

- ``plot_bands``: val ECE and NLL (or any per-epoch metrics) over epochs, one panel per metric;
- ``plot_reliability_matrix``: methods × epochs of logged val reliability diagrams;
- ``plot_bands`` over every ``evidence/<key>`` the methods' losses log is the source
  project's ``calibrate_stats.py`` view (focal term, Brier term, gate w, p_t per epoch), drawn
  for several methods and seeds at once.

Colours are Okabe-Ito's, with a line style per method as well, so the lines stay apart in grey.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, MaxNLocator

# the colours and hatches of a run's own reliability diagrams
from calibexp.plots.reliability import BARS, OVER, OVER_HATCH, UNDER, UNDER_HATCH

OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442",
             "#000000")  # fmt: skip
STYLES = ("-", "--", "-.", ":")

# block -> method -> metric key -> one [(epoch, value), ...] per seed
Curves = dict[str, dict[str, dict[str, list[list[tuple[int, float]]]]]]
COLUMNS = 3  # panels across per block


def band(histories: list[list[tuple[int, float]]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(epochs, mean, std) over every seed that logged the epoch; std NaN where one did."""
    by_epoch: dict[int, list[float]] = {}
    for history in histories:
        for epoch, value in history:
            by_epoch.setdefault(epoch, []).append(value)
    epochs = np.array(sorted(by_epoch))
    values = [np.array(by_epoch[e]) for e in epochs]
    mean = np.array([v.mean() for v in values])
    std = np.array([v.std(ddof=1) if len(v) > 1 else math.nan for v in values])
    return epochs, mean, std


def plot_bands(curves: Curves, keys: list[str], title: str, strip: str = "") -> Figure:
    """Per block of methods (``curves``' outer key; "" for one), one panel per key (titled
    without ``strip``), one line and band per method; a method keeps its colour in every
    block."""
    methods = sorted({m for block in curves.values() for m in block})
    colour = {m: (OKABE_ITO[i % len(OKABE_ITO)], STYLES[i % len(STYLES)])
              for i, m in enumerate(methods)}  # fmt: skip
    columns = min(len(keys), COLUMNS)
    per_block = math.ceil(len(keys) / columns)
    rows = per_block * len(curves)
    fig = Figure(figsize=(4.2 * columns, 3.0 * rows + 0.5 + 0.25 * len(methods) / 3),
                 layout="constrained")  # fmt: skip
    axes = fig.subplots(rows, columns, squeeze=False)
    for b, (block, by_method) in enumerate(curves.items()):
        panels = axes[b * per_block : (b + 1) * per_block].ravel()
        for ax, key in zip(panels, keys):
            for method, metrics in by_method.items():
                if not metrics.get(key):
                    continue
                epochs, mean, std = band(metrics[key])
                line, style = colour[method]
                ax.plot(epochs, mean, color=line, linestyle=style, markersize=3,
                        label=f"{method}", marker="o" if len(epochs) < 25 else None)  # fmt: skip
                ax.fill_between(epochs, mean - std, mean + std, color=line, alpha=0.18,
                                linewidth=0)  # fmt: skip
            name = key.removeprefix(strip)
            ax.set_title(f"{name} — {block}" if block else name, fontsize=10)
            ax.set_xlabel("epoch (0-based)")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        for ax in panels[len(keys) :]:
            ax.set_visible(False)
    shown: dict[str, object] = {}  # every method once
    for ax in axes.ravel():
        for handle, label in zip(*ax.get_legend_handles_labels()):
            shown.setdefault(label, handle)
    fig.legend(list(shown.values()), list(shown), loc="outside lower center",
               ncol=min(len(shown), 3), fontsize=8)  # fmt: skip
    fig.suptitle(f"{title}: mean over seeds, band ± 1 std (ddof = 1)")
    return fig


# ------------------------------------------------------------ reliability, methods × epochs

MATRIX_PANEL = 2.3  # inches per panel: 5 epochs across fit the MLflow artifact viewer
MATRIX_DPI = 90


def _rectangles(edges: np.ndarray, low: np.ndarray, high: np.ndarray) -> list[np.ndarray]:
    return [np.array([[a, lo], [b, lo], [b, hi], [a, hi]])
            for a, b, lo, hi in zip(edges[:-1], edges[1:], low, high)]  # fmt: skip


def _draw_bins(ax: Any, data: Any) -> None:
    """One panel's bars: three collections (accuracy, over- and under-confident gaps), each
    bin's opacity following its share of the samples (``ReliabilityData.opacity``), as the run's
    own diagrams, so a bin of 2 samples is a faint outline, not a full-height verdict."""
    edges = np.asarray(data.edges, dtype=float)
    acc = np.asarray(data.accuracy, dtype=float)
    conf = np.asarray(data.confidence, dtype=float)
    opacity = data.opacity()
    shown = opacity > 0
    over = shown & (conf > acc)
    under = shown & (conf <= acc)
    ax.add_collection(PolyCollection(  # an empty bin's opacity is 0: not drawn
        _rectangles(edges, np.zeros_like(acc), acc),
        facecolors=[to_rgba(BARS, a) for a in opacity], edgecolors="none",
    ))  # fmt: skip
    for mask, colour, hatch in ((over, OVER, OVER_HATCH), (under, UNDER, UNDER_HATCH)):
        if mask.any():
            index = np.flatnonzero(mask)
            boxes = [_rectangles(edges[i : i + 2], [min(acc[i], conf[i])],
                                 [max(acc[i], conf[i])])[0] for i in index]  # fmt: skip
            ax.add_collection(PolyCollection(
                boxes, hatch=hatch, linewidths=0.6,
                facecolors=[to_rgba(colour, 0.45 * opacity[i]) for i in index],
                edgecolors=[to_rgba(colour, opacity[i]) for i in index],
            ))  # fmt: skip


def plot_reliability_matrix(rows: list[tuple[str, list[tuple[Any, str]]]], title: str) -> Figure:
    """Rows of methods, columns of epochs: each panel one logged val diagram (a
    ``ReliabilityData``) drawn compactly, as the SA-FCL README's figure: per confidence bin the
    accuracy (grey) and the gap to the bin's mean confidence, hatched ``//`` in vermilion where
    over-confident and ``\\\\`` in blue where under-confident; empty bins left blank; ECE and
    accuracy above. ``rows``: (method, [(data, column title), ...]), every row the same columns.

    Compact where a run's own evolution figure (``plots/reliability_val_evolution.png``) is
    complete (per-bin opacity, counts, the smooth curve): a report draws up to a hundred panels,
    and one shared pair of axes limits with fixed ticks draws them ~5× faster than full panels
    (benchmarks/report.py)."""
    n_rows, n_columns = len(rows), len(rows[0][1])
    left, right, top, bottom, gap_x, gap_y = 0.9, 0.15, 1.0, 0.9, 0.25, 0.45
    width = left + right + n_columns * MATRIX_PANEL + (n_columns - 1) * gap_x
    height = top + bottom + n_rows * MATRIX_PANEL + (n_rows - 1) * gap_y
    fig = Figure(figsize=(width, height), dpi=MATRIX_DPI)
    axes = fig.subplots(
        n_rows,
        n_columns,
        sharex=True,
        sharey=True,
        squeeze=False,
        gridspec_kw={
            "left": left / width,
            "right": 1 - right / width,
            "top": 1 - top / height,
            "bottom": bottom / height,
            "wspace": gap_x / MATRIX_PANEL,
            "hspace": gap_y / MATRIX_PANEL,
        },
    )
    first = axes[0, 0]
    first.set_xlim(0, 1)
    first.set_ylim(0, 1)
    # Fixed ticks on shared axes: matplotlib otherwise re-derives every panel's ticks per draw.
    first.xaxis.set_major_locator(FixedLocator([0, 0.5, 1]))
    first.yaxis.set_major_locator(FixedLocator([0, 0.5, 1]))
    for r, (method, panels) in enumerate(rows):
        for c, (data, column) in enumerate(panels):
            ax = axes[r, c]
            _draw_bins(ax, data)
            ax.plot([0, 1], [0, 1], "k--", linewidth=0.7, scalex=False, scaley=False)
            ax.set_title(f"ECE {100 * data.ece:.2f}%  acc {100 * data.accuracy_overall:.1f}%",
                         fontsize=8, y=1.0, pad=3)  # fmt: skip
            if r == 0:
                ax.annotate(column, (0.5, 1.18), xycoords="axes fraction", ha="center",
                            fontsize=9, fontweight="bold")  # fmt: skip
            if c == 0:
                ax.set_ylabel(f"{method}\naccuracy", fontsize=8)
            if r == n_rows - 1:
                ax.set_xlabel("confidence", fontsize=8)
            ax.tick_params(labelsize=7)
    fig.legend(
        handles=[
            Patch(facecolor=BARS, label="accuracy per bin"),
            Patch(facecolor=OVER, alpha=0.45, hatch=OVER_HATCH, label="gap: over-confident"),
            Patch(facecolor=UNDER, alpha=0.45, hatch=UNDER_HATCH, label="gap: under-confident"),
            Line2D([], [], color="black", linestyle="--", linewidth=0.7, label="perfect"),
        ],
        loc="lower center",
        ncol=4,
        fontsize=8,
        frameon=False,
    )
    fig.suptitle(title, fontsize=11, y=1 - 0.12 / height, va="top")
    return fig
