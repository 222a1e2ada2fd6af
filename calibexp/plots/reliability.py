"""Reliability diagrams: compute the data (``prepare_reliability``), then draw it
(``plot_reliability``, ``plot_reliability_grid``, or frame by frame with ``ReliabilityFrames``).
The data is plain and JSON-able so it is logged beside the picture and an evolution figure can be
drawn later from the logged tables.

One diagram, top to bottom (Guo et al., ICML 2017, Fig. 1; Błasiok & Nakkiran, ICLR 2024, for the
smooth curve):
- per equal-width confidence bin ((lo, hi], as ``ece``), the bin's accuracy as a grey bar and
  the gap to its mean confidence as a bar hatched ``//`` in vermilion where the bin is
  over-confident (confidence > accuracy) and ``\\\\`` in blue where under-confident. Every bar's
  opacity follows the bin's share of the samples (√(count / fullest bin's count)), so a bin of
  3 samples out of 450 is a faint outline, not a full-height verdict;
- the smooth reliability curve μ(t) (kernel-smoothed accuracy at the smECE bandwidth σ*, as
  relplot computes it), drawn only where at least ``MIN_SUPPORT`` samples lie within the kernel's
  reach (N · density(t) · 2σ*): outside, μ(t) is the kernel's extrapolation of far-away samples;
- beneath, the number of samples per bin on a log scale (a bin of 3 next to one of 400 still
  shows) with its count written on it; the title carries ECE, smECE, accuracy and N. The legend
  sits below the axes, off the data. Hatching, line styles and opacity keep every element
  distinguishable in greyscale; the colours are Okabe-Ito's.

Figures are built with matplotlib's object API (``Figure``, never ``pyplot``): no global state,
nothing to close, and safe to draw on calibexp's one background thread.
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, NullFormatter

if TYPE_CHECKING:
    import torch

    from calibexp.metrics.predictions import Predictions

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
OVER = "#D55E00"  # vermilion: over-confident bins (confidence > accuracy)
UNDER = "#0072B2"  # blue: under-confident bins
SMOOTH = "#009E73"  # bluish green: the smooth reliability curve
BARS = "#9A9A9A"
OVER_HATCH, UNDER_HATCH = "//", "\\\\"
MIN_OPACITY = 0.12  # the faintest non-empty bin: still visible as an outline
MIN_SUPPORT = 10  # samples within ±σ* below which the smooth curve is not drawn
PANEL_SIZE = (4.2, 5.0)  # inches per diagram; at 110 dpi the 9-10 pt labels read at 100% zoom
LEGEND_HEIGHT = 0.55  # inches below the panels for the shared legend
SUPTITLE_HEIGHT = 0.3  # inches above the panels for a figure's title
MAX_COLUMNS = 2  # a grid of at most 2 panels across (924 px) fits the MLflow artifact viewer
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

    def opacity(self) -> np.ndarray:
        """Per bin: ``MIN_OPACITY`` + the rest in proportion to the square root of its count
        over the fullest bin's (the root, so a bin of 28 beside one of 375 still reads as data,
        and one of 3 as next to none); 0 for an empty bin."""
        counts = np.asarray(self.counts, dtype=float)
        share = np.sqrt(counts / max(counts.max(), 1.0))
        return np.where(counts > 0, MIN_OPACITY + (1 - MIN_OPACITY) * share, 0.0)

    def supported_curve(self) -> tuple[np.ndarray, np.ndarray]:
        """The smooth curve's mesh and μ(t), NaN where fewer than ``MIN_SUPPORT`` samples lie
        within ±σ* (N · density(t) · 2σ*: density integrates to 1 over [0, 1])."""
        mesh = np.asarray(self.smooth.get("mesh", []), dtype=float)
        mu = np.asarray(self.smooth.get("accuracy", []), dtype=float)
        local = self.n * np.asarray(self.smooth.get("density", []), dtype=float) * 2 * self.sigma
        return mesh, np.where(local >= MIN_SUPPORT, mu, np.nan)


def prepare_reliability(
    logits: torch.Tensor, targets: torch.Tensor, bins: int = 15
) -> ReliabilityData:
    from calibexp.metrics.predictions import Predictions

    return reliability_of(Predictions(logits, targets), bins)


def reliability_of(p: Predictions, bins: int = 15) -> ReliabilityData:
    """The diagram's data from predictions already wrapped (shared with ``suite_of``)."""
    # torch and the metrics imported here: drawing logged diagrams (a report) needs neither
    import torch

    from calibexp.metrics.calibration import equal_width_bins
    from calibexp.metrics.smooth import smooth_reliability

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


def heading_of(data: ReliabilityData, title: str) -> str:
    heading = f"{title}\n" if title else ""
    return (
        f"{heading}ECE {100 * data.ece:.2f}%  smECE {100 * data.smece:.2f}%  "
        f"acc {100 * data.accuracy_overall:.1f}%  N {data.n}"
    )


class ReliabilityPanel:
    """One diagram's artists on two axes, made once for ``bins`` bins and ``n`` samples and
    restyled by ``show`` (so a series of diagrams re-draws only what changes)."""

    def __init__(self, top: Any, bottom: Any, bins: int, n: int, animated: bool = False) -> None:
        self.top, self.bottom = top, bottom
        edges = np.linspace(0, 1, bins + 1)
        left, width = edges[:-1], np.diff(edges)
        zeros = np.zeros(bins)
        self.accuracy = top.bar(
            left, zeros, width=width, align="edge", color=BARS, edgecolor="black", linewidth=0.6
        ).patches
        self.gaps = top.bar(
            left, zeros, width=width, align="edge", edgecolor=OVER, linewidth=0.8
        ).patches
        (diagonal,) = top.plot([0, 1], [0, 1], color="black", linestyle="--", linewidth=0.8)
        (self.curve,) = top.plot([], [], color=SMOOTH, linewidth=2.0)
        top.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy")
        bottom.set_yscale("log")
        # Plain "1", "10", "100" instead of the log axis's default "$10^{2}$": that one label
        # would build matplotlib's mathtext parser, ~0.23 s once per process and 2/3 of the
        # first diagram's drawing time (tests/plots/test_reliability.py).
        bottom.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        bottom.yaxis.set_minor_formatter(NullFormatter())
        self.histogram = bottom.bar(
            left,
            np.ones(bins),
            width=width,
            align="edge",
            color=BARS,
            edgecolor="black",
            linewidth=0.6,
        ).patches
        self.counts = [
            bottom.text(x + w / 2, 1, "", ha="center", va="bottom", fontsize=6.5)
            for x, w in zip(left, width)
        ]
        # log axis from below one sample to above N, so every non-empty bin has a visible bar
        bottom.set(xlim=(0, 1), ylim=(0.6, max(n, 10) * 4), xlabel="confidence", ylabel="samples")
        top.tick_params(labelbottom=False)
        # in zorder, as a full draw orders them (patches, lines, texts)
        self.dynamic = [*self.accuracy, *self.gaps, diagonal, self.curve, top.title]
        self.dynamic += [*self.histogram, *self.counts]
        for artist in self.dynamic:
            artist.set_animated(animated)

    def show(self, data: ReliabilityData, title: str) -> None:
        acc, conf = np.asarray(data.accuracy), np.asarray(data.confidence)
        opacity = data.opacity()
        for m, count in enumerate(data.counts):
            shown = count > 0
            over = conf[m] > acc[m]
            colour = OVER if over else UNDER
            self.accuracy[m].set(height=acc[m], alpha=opacity[m])  # 0, 0 for an empty bin
            self.gaps[m].set(
                y=min(conf[m], acc[m]),
                height=abs(conf[m] - acc[m]),
                facecolor=(*to_rgb(colour), 0.45 * opacity[m]),
                edgecolor=(*to_rgb(colour), opacity[m]),
                hatch=OVER_HATCH if over else UNDER_HATCH,
                visible=shown,
            )
            self.histogram[m].set(height=max(count, 1e-3), visible=shown)
            self.counts[m].set(text=str(count) if shown else "", y=max(count, 1) * 1.15)
        self.curve.set_data(*data.supported_curve())
        self.top.set_title(heading_of(data, title), fontsize=9)

    def draw(self, renderer: Any) -> None:
        """Draw the changing artists on ``renderer`` (the background is already there)."""
        for artist in self.dynamic:
            if artist.get_visible():
                artist.draw(renderer)


def legend_handles() -> list[Any]:
    return [
        Patch(facecolor=BARS, edgecolor="black", label="accuracy per bin, opacity ∝ √count"),
        Patch(facecolor=OVER, alpha=0.45, hatch=OVER_HATCH, label="gap: over-confident"),
        Patch(facecolor=UNDER, alpha=0.45, hatch=UNDER_HATCH, label="gap: under-confident"),
        Line2D([], [], color=SMOOTH, linewidth=2.0, label=f"smooth μ(t), ≥{MIN_SUPPORT} in ±σ*"),
        Line2D([], [], color="black", linestyle="--", linewidth=0.8, label="perfect calibration"),
    ]


def grid_shape(n_panels: int) -> tuple[int, int]:
    """(rows, columns) of a figure of ``n_panels`` diagrams."""
    columns = min(n_panels, MAX_COLUMNS)
    return math.ceil(n_panels / columns), columns


def figure_size(n_panels: int, suptitle: bool = False) -> tuple[float, float]:
    """(width, height) in inches of a figure of ``n_panels`` diagrams."""
    rows, columns = grid_shape(n_panels)
    head = SUPTITLE_HEIGHT if suptitle else 0.0
    return PANEL_SIZE[0] * columns, PANEL_SIZE[1] * rows + LEGEND_HEIGHT + head


def grid_figure(
    n_panels: int, bins: int, n: int, suptitle: str = "", animated: bool = False
) -> tuple[Figure, list[ReliabilityPanel]]:
    """A figure of ``n_panels`` diagrams, at most ``MAX_COLUMNS`` across, legend beneath."""
    rows, columns = grid_shape(n_panels)
    head = SUPTITLE_HEIGHT if suptitle else 0.0
    width, height = figure_size(n_panels, bool(suptitle))
    fig = Figure(figsize=(width, height), dpi=DPI)
    # Fixed margins in inches instead of constrained layout, which is half the drawing time.
    left, right, top_margin, gap_x, gap_y, below = 0.65, 0.15, 0.5, 0.75, 0.95, 0.5
    panels = []
    panel_w = (width - left - right - (columns - 1) * gap_x) / columns
    panel_h = (PANEL_SIZE[1] * rows - top_margin - below - (rows - 1) * gap_y) / rows
    for i in range(n_panels):
        r, c = divmod(i, columns)
        x0 = left + c * (panel_w + gap_x)
        y_top = height - head - top_margin - r * (panel_h + gap_y)
        upper_h, lower_h, stack = panel_h * 0.72, panel_h * 0.25, panel_h * 0.03
        top = fig.add_axes(
            (x0 / width, (y_top - upper_h) / height, panel_w / width, upper_h / height)
        )
        bottom = fig.add_axes(
            (
                x0 / width,
                (y_top - upper_h - stack - lower_h) / height,
                panel_w / width,
                lower_h / height,
            ),
            sharex=top,
        )
        panels.append(ReliabilityPanel(top, bottom, bins, n, animated))
    fig.legend(
        handles=legend_handles(),
        loc="lower center",
        ncol=2,
        fontsize=7,
        frameon=False,
        bbox_to_anchor=(0.5, 0.0),
    )
    if suptitle:
        fig.suptitle(suptitle, fontsize=11, y=1 - 0.06 / height, va="top")
    return fig, panels


def plot_reliability_grid(panels: list[tuple[ReliabilityData, str]], suptitle: str = "") -> Figure:
    """Diagrams in a grid, at most ``MAX_COLUMNS`` across (before/after calibration, or chosen
    epochs of a run), so the figure stays legible at the width the MLflow UI shows it."""
    first = panels[0][0]
    fig, drawn = grid_figure(len(panels), len(first.counts), first.n, suptitle)
    for panel, (data, title) in zip(drawn, panels):
        panel.show(data, title)
    return fig


def plot_reliability(data: ReliabilityData, title: str = "") -> Figure:
    return plot_reliability_grid([(data, title)])


class ReliabilityFrames:
    """A series of one-panel diagrams (one per epoch) rendered by re-drawing only the artists
    that change over a background rendered once: ~20-30 ms a frame against ~110-180 ms for a
    new figure (benchmarks/tracking_overhead.py). The same picture as ``plot_reliability`` but
    for the few pixels where a bar edge meets an axis spine, drawn in the other order
    (tests/plots/test_reliability.py). Not thread-safe: one series per worker thread."""

    def __init__(self) -> None:
        self._shape: tuple[int, int] | None = None

    def _prepare(self, bins: int, n: int) -> None:
        self.fig, (self.panel,) = grid_figure(1, bins, n, animated=True)
        self.canvas = FigureCanvasAgg(self.fig)
        self.canvas.draw()
        self.background = self.canvas.copy_from_bbox(self.fig.bbox)
        self._shape = (bins, n)

    def pixels(self, data: ReliabilityData, title: str = "") -> np.ndarray:
        if self._shape != (len(data.counts), data.n):
            self._prepare(len(data.counts), data.n)
        self.canvas.restore_region(self.background)
        self.panel.show(data, title)
        self.panel.draw(self.canvas.get_renderer())
        return canvas_rgb(self.canvas)


def figure_png(fig: Figure, dpi: float | str = DPI) -> bytes:
    """The figure as PNG bytes, at ``dpi`` (``"figure"``: the figure's own)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def figure_pixels(fig: Figure) -> np.ndarray:
    """The rendered figure as an RGB uint8 array (what ``MlflowClient.log_image`` takes)."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas_rgb(canvas)


def canvas_rgb(canvas: FigureCanvasAgg) -> np.ndarray:
    """A drawn canvas as an RGB uint8 array, copied (the canvas buffer is reused)."""
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
