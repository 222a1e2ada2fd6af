"""The hyper-parameters a meta-calibration run learned (calibexp.meta.learners), drawn from
the arrays it logs as ``meta/learned.npz``:

- label smoothing: the learned ε per class as bars (one row of bars per domain when the run
  learned one vector per domain, a single bar for the scalar learner);
- non-uniform label smoothing: beside the bars, the row-normalised spread Ā as a heat map
  (row y: where class y's smoothing mass goes);
- head L2: histograms of the learned coefficients of the final layer's weight and bias.

Matplotlib's object API (``Figure``), like the reliability diagrams: safe on the tracking thread.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

BLUE, VERMILION = "#0072B2", "#D55E00"  # Okabe-Ito, as the reliability diagrams


def plot_learned(learned: dict[str, np.ndarray], domain_names: Sequence[str] = ()) -> Figure:
    if "reg_weight" in learned:
        return _plot_l2(learned)
    eps = np.atleast_2d(learned["eps"])
    spread = learned.get("spread_rows")
    fig = Figure(figsize=(11 if spread is not None else 6.5, 3.6), layout="constrained")
    axes = fig.subplots(1, 2 if spread is not None else 1, squeeze=False)[0]
    _plot_eps(axes[0], eps, domain_names)
    if spread is not None:
        image = axes[1].imshow(spread, cmap="viridis", vmin=0)
        axes[1].set_title("non-uniform smoothing Ā (row: true class)")
        axes[1].set_xlabel("class receiving mass")
        axes[1].set_ylabel("true class")
        axes[1].set_xticks(range(len(spread)))
        axes[1].set_yticks(range(len(spread)))
        fig.colorbar(image, ax=axes[1], shrink=0.85)
    return fig


def _plot_eps(ax, eps: np.ndarray, domain_names: Sequence[str]) -> None:  # noqa: ANN001
    rows, classes = eps.shape
    width = 0.8 / rows
    names = list(domain_names) if rows > 1 else ["all domains"]
    for r in range(rows):
        ax.bar(
            np.arange(classes) + (r - (rows - 1) / 2) * width,
            eps[r],
            width=width,
            label=names[r] if r < len(names) else f"domain {r}",
            color=BLUE if rows == 1 else None,
        )
    ax.set_ylim(0, max(0.5, float(eps.max()) * 1.1))
    ax.set_xticks(range(classes))
    ax.set_xlabel("class" if classes > 1 else "(one ε for every class)")
    ax.set_ylabel("learned ε")
    ax.set_title(f"learned label smoothing (mean ε {eps.mean():.3f})")
    if rows > 1:
        ax.legend(fontsize="small", ncols=min(rows, 3))


def _plot_l2(learned: dict[str, np.ndarray]) -> Figure:
    fig = Figure(figsize=(9, 3.4), layout="constrained")
    for ax, key, colour in zip(fig.subplots(1, 2), ("reg_weight", "reg_bias"), (BLUE, VERMILION)):
        values = learned[key].ravel()
        ax.hist(values, bins=40, color=colour)
        ax.set_title(f"learned L2 on the head's {key[4:]} (mean {values.mean():.2e})")
        ax.set_xlabel("coefficient")
        ax.set_ylabel("count")
    return fig
