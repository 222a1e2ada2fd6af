"""Figures of a run's robustness evaluation (``calibexp.robustness``):

- ``plot_score_histograms``: for each OoD score (higher = more OoD), the share of clean test
  samples and of OoD samples per score bin, on one shared set of bins, with the logged AUROC in
  the title: separation is the gap between the two histograms.
- ``plot_severity_curves``: ECE and accuracy against corruption severity 1-5, a thin line per
  corruption and the mean over corruptions in bold, before and after temperature scaling.

Matplotlib's object API (``Figure``): safe on the tracking thread.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from calibexp.metrics.registry import logged_name

BLUE, VERMILION, GREY = "#0072B2", "#D55E00", "#999999"  # Okabe-Ito, as the other figures


def plot_score_histograms(
    name: str,
    id_scores: dict[str, np.ndarray],
    ood_scores: dict[str, np.ndarray],
    aurocs: dict[str, float],
) -> Figure:
    fig = Figure(figsize=(3.2 * len(id_scores), 3.0), layout="constrained")
    axes = fig.subplots(1, len(id_scores), squeeze=False)[0]
    for ax, score in zip(axes, id_scores):
        clean, other = id_scores[score], ood_scores[score]
        edges = np.histogram_bin_edges(np.concatenate([clean, other]), bins=40)
        for values, colour, label in ((clean, BLUE, "test (ID)"), (other, VERMILION, name)):
            weights = np.full(len(values), 1 / max(len(values), 1))
            ax.hist(values, bins=edges, weights=weights, color=colour, alpha=0.55, label=label)
        ax.set_title(f"{score}: AUROC {aurocs[score]:.3f}")
        ax.set_xlabel("score (higher = more OoD)")
        ax.set_ylabel("share of samples")
    axes[0].legend(fontsize="small")
    fig.suptitle(f"OoD scores, test vs {name} (no temperature)")
    return fig


def plot_severity_curves(
    name: str, rows: list[dict[str, Any]], bins: int, benchmark: tuple[str, ...]
) -> Figure:
    """The mean is over the ``benchmark`` corruptions, as the logged aggregates; the thin lines
    show every corruption evaluated, extra ones too."""
    ece = logged_name("ece", bins)
    fig = Figure(figsize=(9, 3.4), layout="constrained")
    for ax, key, label in zip(fig.subplots(1, 2), (ece, "acc"), (f"ECE ({bins} bins)", "accuracy")):
        for variant, colour in (("shift", BLUE), ("shift_ts", VERMILION)):
            mine = [row for row in rows if row["variant"] == variant]
            severities = sorted({row["severity"] for row in mine})
            corruptions = list(dict.fromkeys(row["corruption"] for row in mine))
            table = {(row["corruption"], row["severity"]): row[key] for row in mine}
            if variant == "shift":
                for corruption in corruptions:
                    ys = [table[corruption, s] for s in severities]
                    ax.plot(severities, ys, color=GREY, linewidth=0.7, alpha=0.6)
            counted = [c for c in corruptions if c in benchmark]
            means = [np.mean([table[c, s] for c in counted]) for s in severities]
            ax.plot(
                severities,
                means,
                color=colour,
                linewidth=2.2,
                marker="o",
                label=f"mean over corruptions{', after TS' if variant == 'shift_ts' else ''}",
            )
        ax.set_xlabel("severity")
        ax.set_xticks(range(1, 6))
        ax.set_ylabel(label)
        ax.set_title(f"{label} under {name} (grey: each corruption)")
    fig.axes[0].legend(fontsize="small")
    return fig
