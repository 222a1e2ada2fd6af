"""Reliability diagrams: compute the data (``prepare_reliability``), then draw it
(``plot_reliability``, ``plot_reliability_row``). The data is plain and JSON-able so it is logged
beside the picture and an evolution figure can be drawn later from the logged tables.

One diagram, top to bottom (Guo et al., ICML 2017, Fig. 1; Błasiok & Nakkiran, ICLR 2024, for the
smooth curve):
- per equal-width confidence bin ((lo, hi], as ``ece``), the bin's accuracy as a grey bar and
  the gap to its mean confidence as a hatched bar, vermilion where the bin is over-confident
  (confidence > accuracy) and blue where under-confident;
- the smooth reliability curve μ(t) (kernel-smoothed accuracy at the smECE bandwidth σ*, as
  relplot draws it), whose line width follows the density of confidences;
- beneath, the histogram of confidences; the title carries ECE, smECE, accuracy and N.

Figures are built with matplotlib's object API (``Figure``, never ``pyplot``): no global state,
nothing to close, and safe to draw on calibexp's one background thread.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from calibexp.metrics.calibration import equal_width_bins
from calibexp.metrics.predictions import Predictions
from calibexp.metrics.smooth import smooth_reliability

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
OVER = "#D55E00"  # vermilion: over-confident bins (confidence > accuracy)
UNDER = "#0072B2"  # blue: under-confident bins
SMOOTH = "#009E73"  # bluish green: the smooth reliability curve
BARS = "#BBBBBB"
PANEL_SIZE = (4.2, 5.4)  # inches per diagram; at 110 dpi the 9-10 pt labels read at 100% zoom
DPI = 110


@dataclass(frozen=True)
class ReliabilityData:
    edges: list[float]  # M + 1 bin edges
    counts: list[int]  # samples per bin
    accuracy: list[float]  # mean correctness per bin (0 for empty bins)
    confidence: list[float]  # mean confidence per bin (bin centre for empty bins)
    ece: float
    smece: float
    sigma: float  # the smECE bandwidth σ*
    accuracy_overall: float
    n: int
    # the smooth curve on a mesh of confidences: {"mesh", "accuracy", "density"}
    smooth: dict[str, list[float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ReliabilityData":
        return cls(**data)


def prepare_reliability(
    logits: torch.Tensor, targets: torch.Tensor, bins: int = 15
) -> ReliabilityData:
    return reliability_of(Predictions(logits, targets), bins)


def reliability_of(p: Predictions, bins: int = 15) -> ReliabilityData:
    """The diagram's data from predictions already wrapped (shared with ``suite_of``)."""
    idx = equal_width_bins(p.confidence, bins)
    counts = torch.bincount(idx, minlength=bins).double()
    acc_sum = torch.bincount(idx, weights=p.correct.double(), minlength=bins)
    conf_sum = torch.bincount(idx, weights=p.confidence.double(), minlength=bins)
    edges = torch.linspace(0, 1, bins + 1, dtype=torch.float64, device=counts.device)
    centres = (edges[:-1] + edges[1:]) / 2
    nonempty = counts > 0
    acc = torch.where(nonempty, acc_sum / counts.clamp(min=1), torch.zeros_like(counts))
    conf = torch.where(nonempty, conf_sum / counts.clamp(min=1), centres)
    curve = smooth_reliability(p)
    return ReliabilityData(
        edges=edges.tolist(),
        counts=[int(c) for c in counts.tolist()],
        accuracy=acc.tolist(),
        confidence=conf.tolist(),
        ece=float((acc_sum - conf_sum).abs().sum() / len(p)),
        smece=curve["smece"],
        sigma=curve["sigma"],
        accuracy_overall=float(p.correct.mean()),
        n=len(p),
        smooth={k: curve[k] for k in ("mesh", "accuracy", "density")},
    )


def draw_reliability(data: ReliabilityData, top: Any, bottom: Any, title: str = "") -> None:
    """One diagram on two axes: reliability (``top``) and confidence histogram (``bottom``)."""
    left = np.array(data.edges[:-1])
    width = np.diff(data.edges)
    shown = np.array(data.counts) > 0
    acc = np.where(shown, data.accuracy, 0.0)
    conf = np.array(data.confidence)
    top.bar(left, acc, width=width, align="edge", color=BARS, edgecolor="black", linewidth=0.5)
    over = conf > acc
    top.bar(
        left[shown],
        np.abs(conf - acc)[shown],
        bottom=np.minimum(conf, acc)[shown],
        width=width[shown],
        align="edge",
        color=np.where(over, OVER, UNDER)[shown].tolist(),
        alpha=0.45,
        edgecolor=np.where(over, OVER, UNDER)[shown].tolist(),
        hatch="//",
        linewidth=0.5,
    )
    top.plot([0, 1], [0, 1], "k--", linewidth=0.8)
    if data.smooth:
        _draw_smooth_curve(top, data.smooth)
    top.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy")
    top.legend(
        handles=[
            Patch(facecolor=BARS, edgecolor="black", label="accuracy per bin"),
            Patch(facecolor=OVER, alpha=0.45, hatch="//", label="gap: over-confident"),
            Patch(facecolor=UNDER, alpha=0.45, hatch="//", label="gap: under-confident"),
            _line_handle(top, f"smooth (σ* = {data.sigma:.3f})"),
        ],
        loc="upper left",
        fontsize=7.5,
        framealpha=0.85,  # readable over under-confident bars, which reach the upper left
    )
    heading = f"{title}\n" if title else ""
    top.set_title(
        f"{heading}ECE {100 * data.ece:.2f}%  smECE {100 * data.smece:.2f}%  "
        f"acc {100 * data.accuracy_overall:.1f}%  N {data.n}",
        fontsize=9,
    )
    bottom.bar(
        left,
        np.array(data.counts) / max(data.n, 1),
        width=width,
        align="edge",
        color=BARS,
        edgecolor="black",
        linewidth=0.5,
    )
    bottom.set(xlim=(0, 1), xlabel="confidence", ylabel="fraction")


def _draw_smooth_curve(ax: Any, smooth: dict[str, list[float]]) -> None:
    """μ(t) as a thin line inside a band whose width follows the density of confidences
    (relplot's look). One polygon: relplot's one ``fill_between`` per mesh cell, or a
    ``LineCollection`` with per-segment widths, take 30-50 ms more per figure."""
    mesh, mu, density = (np.asarray(smooth[k]) for k in ("mesh", "accuracy", "density"))
    half_width = 0.025 * density / max(density.max(), 1e-12)
    ax.fill_between(mesh, mu - half_width, mu + half_width, color=SMOOTH, alpha=0.6, linewidth=0)
    ax.plot(mesh, mu, color=SMOOTH, linewidth=1.0)


def _line_handle(ax: Any, label: str) -> Any:
    from matplotlib.lines import Line2D

    return Line2D([], [], color=SMOOTH, linewidth=2.5, label=label)


def plot_reliability_row(panels: list[tuple[ReliabilityData, str]], suptitle: str = "") -> Figure:
    """Diagrams side by side (before/after calibration, or chosen epochs of a run)."""
    n = len(panels)
    width, height = PANEL_SIZE[0] * n, PANEL_SIZE[1] + (0.25 if suptitle else 0.0)
    # Fixed margins in inches instead of constrained layout, which is half the drawing time.
    left, right, bottom, top, gap, stack_gap = 0.65, 0.15, 0.55, 0.62, 0.75, 0.12
    top += 0.25 if suptitle else 0.0
    panel_width = (width - left - right - (n - 1) * gap) / n
    panel_height = (height - bottom - top - stack_gap) / 2
    fig = Figure(figsize=(width, height), dpi=DPI)
    axes = fig.subplots(
        2,
        n,
        sharex="col",
        squeeze=False,
        gridspec_kw={
            "height_ratios": [3, 1],
            "left": left / width,
            "right": 1 - right / width,
            "bottom": bottom / height,
            "top": 1 - top / height,
            "wspace": gap / panel_width,
            "hspace": stack_gap / panel_height,
        },
    )
    for column, (data, title) in enumerate(panels):
        draw_reliability(data, axes[0, column], axes[1, column], title)
    if suptitle:
        fig.suptitle(suptitle, fontsize=11, y=1 - 0.06 / height, va="top")
    return fig


def plot_reliability(data: ReliabilityData, title: str = "") -> Figure:
    return plot_reliability_row([(data, title)])


def figure_png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def figure_pixels(fig: Figure) -> np.ndarray:
    """The rendered figure as an RGB uint8 array (what ``MlflowClient.log_image`` takes)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
