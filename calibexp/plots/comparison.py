"""Figures that compare methods across seeds (``calibexp.reports``): one line per method, the
mean over its seeds per epoch, and a band of ± one sample standard deviation (ddof = 1) where at
least two seeds logged that epoch.

- ``plot_bands``: val ECE and NLL (or any per-epoch metrics) over epochs, one panel per metric;
- the same function over every ``evidence/<key>`` the methods' losses log is the source
  project's ``calibrate_stats.py`` view (focal term, Brier term, gate w, p_t per epoch), drawn
  for several methods and seeds at once.

Colours are Okabe-Ito's, with a line style per method as well, so the lines stay apart in grey.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442",
             "#000000")  # fmt: skip
STYLES = ("-", "--", "-.", ":")

# method -> metric key -> one [(epoch, value), ...] per seed
Curves = dict[str, dict[str, list[list[tuple[int, float]]]]]


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
    """One panel per key (its name without ``strip``), one line and band per method."""
    columns = min(len(keys), 3)
    rows = math.ceil(len(keys) / columns)
    fig = Figure(figsize=(4.2 * columns, 3.2 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax, key in zip(axes, keys):
        for i, (method, metrics) in enumerate(curves.items()):
            if not metrics.get(key):
                continue
            epochs, mean, std = band(metrics[key])
            colour = OKABE_ITO[i % len(OKABE_ITO)]
            seeds = len(metrics[key])
            ax.plot(epochs, mean, color=colour, linestyle=STYLES[i % len(STYLES)],
                    label=f"{method} (n={seeds})", marker="o" if len(epochs) < 25 else None,
                    markersize=3)  # fmt: skip
            ax.fill_between(epochs, mean - std, mean + std, color=colour, alpha=0.18,
                            linewidth=0)  # fmt: skip
        ax.set_title(key.removeprefix(strip))
        ax.set_xlabel("epoch (0-based)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes[len(keys) :]:
        ax.set_visible(False)
    shown: dict[str, object] = {}  # every method once, in the order drawn
    for ax in axes[: len(keys)]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            shown.setdefault(label, handle)
    labels = list(shown)
    fig.legend(
        list(shown.values()),
        labels,
        loc="outside lower center",
        ncol=min(len(labels), 4),
        fontsize=8,
    )
    fig.suptitle(f"{title}: mean over seeds, band ± 1 std (ddof = 1)")
    return fig
