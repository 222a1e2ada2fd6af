"""Calibration losses: registration happens at import, one module per family."""

from calibexp.losses import (  # noqa: F401  (each registers its losses)
    brier,
    cross_entropy,
    dece,
    fcl,
    focal,
    mmce,
)
from calibexp.losses.base import CalibrationLoss
from calibexp.losses.registry import LOSSES

__all__ = ["LOSSES", "CalibrationLoss"]
