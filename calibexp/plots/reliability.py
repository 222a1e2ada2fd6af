"""Reliability diagrams: compute the data (``prepare_reliability``), then draw it
(``plot_reliability``). The data is plain and JSON-able so it can be logged beside the picture.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import matplotlib

matplotlib.use("Agg")  # files only; never open a window from a training job
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from calibexp.metrics.calibration import equal_width_bins  # noqa: E402
from calibexp.metrics.predictions import Predictions  # noqa: E402

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
OVER = "#D55E00"  # over-confident bins (confidence > accuracy)
UNDER = "#0072B2"  # under-confident bins
BARS = "#999999"


@dataclass(frozen=True)
class ReliabilityData:
    edges: list[float]  # M + 1 bin edges
    counts: list[int]  # samples per bin
    accuracy: list[float]  # mean correctness per bin (0 for empty bins)
    confidence: list[float]  # mean confidence per bin (bin centre for empty bins)
    ece: float
    accuracy_overall: float
    n: int

    def to_dict(self) -> dict:
        return asdict(self)


def prepare_reliability(
    logits: torch.Tensor, targets: torch.Tensor, bins: int = 15
) -> ReliabilityData:
    p = Predictions(logits, targets)
    idx = equal_width_bins(p.confidence, bins)
    counts = torch.bincount(idx, minlength=bins).double()
    acc_sum = torch.bincount(idx, weights=p.correct.double(), minlength=bins)
    conf_sum = torch.bincount(idx, weights=p.confidence.double(), minlength=bins)
    edges = torch.linspace(0, 1, bins + 1, dtype=torch.float64)
    centres = (edges[:-1] + edges[1:]) / 2
    nonempty = counts > 0
    acc = torch.where(nonempty, acc_sum / counts.clamp(min=1), torch.zeros_like(counts))
    conf = torch.where(nonempty, conf_sum / counts.clamp(min=1), centres.to(counts.device))
    return ReliabilityData(
        edges=edges.tolist(),
        counts=[int(c) for c in counts.tolist()],
        accuracy=acc.tolist(),
        confidence=conf.tolist(),
        ece=float((acc_sum - conf_sum).abs().sum() / len(p)),
        accuracy_overall=float(p.correct.mean()),
        n=len(p),
    )


def plot_reliability(data: ReliabilityData, title: str = "", axes=None) -> plt.Figure:
    """Accuracy per confidence bin with the gap to the diagonal coloured by over- or
    under-confidence, and the confidence histogram beneath."""
    if axes is None:
        fig, axes = plt.subplots(
            2,
            1,
            figsize=(4.8, 5.6),
            sharex=True,
            gridspec_kw={"height_ratios": [3, 1]},
            constrained_layout=True,
        )
    top, bottom = axes
    left = data.edges[:-1]
    width = [hi - lo for lo, hi in zip(data.edges[:-1], data.edges[1:])]
    shown = [c > 0 for c in data.counts]
    acc = [a if s else 0.0 for a, s in zip(data.accuracy, shown)]
    top.bar(
        left,
        acc,
        width=width,
        align="edge",
        color=BARS,
        edgecolor="black",
        linewidth=0.6,
        label="accuracy",
    )
    gap_bottom = [min(a, c) if s else 0 for a, c, s in zip(data.accuracy, data.confidence, shown)]
    gap_height = [abs(c - a) if s else 0 for a, c, s in zip(data.accuracy, data.confidence, shown)]
    colours = [OVER if c > a else UNDER for a, c in zip(data.accuracy, data.confidence)]
    top.bar(
        left,
        gap_height,
        bottom=gap_bottom,
        width=width,
        align="edge",
        color=colours,
        alpha=0.55,
        edgecolor=colours,
        hatch="//",
        linewidth=0.6,
    )
    top.plot([0, 1], [0, 1], "k--", linewidth=1)
    top.bar([0], [0], color=OVER, alpha=0.55, hatch="//", label="gap: over-confident")
    top.bar([0], [0], color=UNDER, alpha=0.55, hatch="//", label="gap: under-confident")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.legend(loc="upper left", fontsize=8, frameon=False)
    heading = f"{title}\n" if title else ""
    top.set_title(
        f"{heading}ECE = {100 * data.ece:.2f}%   acc = {100 * data.accuracy_overall:.2f}%"
        f"   N = {data.n}",
        fontsize=10,
    )
    total = max(data.n, 1)
    bottom.bar(
        left,
        [c / total for c in data.counts],
        width=width,
        align="edge",
        color=BARS,
        edgecolor="black",
        linewidth=0.6,
    )
    bottom.set_xlabel("confidence")
    bottom.set_ylabel("fraction")
    return top.figure
