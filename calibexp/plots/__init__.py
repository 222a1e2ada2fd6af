"""Figures: each is computed as data first, then drawn."""

from calibexp.plots.reliability import ReliabilityData, plot_reliability, prepare_reliability

__all__ = ["ReliabilityData", "plot_reliability", "prepare_reliability"]
