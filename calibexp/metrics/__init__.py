"""Calibration metrics and post-hoc calibrators (registration happens at import)."""

from calibexp.metrics import calibration, scoring, smooth  # noqa: F401  (register the metrics)
from calibexp.metrics.predictions import Predictions
from calibexp.metrics.registry import METRICS
from calibexp.metrics.suite import metric_suite, suite_of
from calibexp.metrics.temperature import CALIBRATORS, fit_temperature

__all__ = ["CALIBRATORS", "METRICS", "Predictions", "fit_temperature", "metric_suite", "suite_of"]
