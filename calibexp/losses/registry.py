"""The loss registry: ``builder(**hyper-parameters) -> CalibrationLoss``."""

from calibexp.registry import Registry

LOSSES = Registry("loss")
