"""Figures: each is computed as data first, then drawn."""

from calibexp.plots.reliability import (
    ReliabilityData,
    ReliabilityFrames,
    figure_pixels,
    figure_png,
    plot_reliability,
    plot_reliability_grid,
    prepare_reliability,
    reliability_of,
)

__all__ = [
    "ReliabilityData",
    "ReliabilityFrames",
    "figure_pixels",
    "figure_png",
    "plot_reliability",
    "plot_reliability_grid",
    "prepare_reliability",
    "reliability_of",
]
