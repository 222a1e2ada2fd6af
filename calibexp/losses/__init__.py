"""Calibration losses: registration happens at import, one module per family."""

from calibexp.losses import cross_entropy  # noqa: F401  (registers "ce")
from calibexp.losses.base import CalibrationLoss
from calibexp.losses.registry import LOSSES

__all__ = ["LOSSES", "CalibrationLoss"]
