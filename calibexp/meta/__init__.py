"""Meta-calibration: the differentiable ECE (DECE) and, later, meta-learned hyper-parameters."""

from calibexp.meta.dece import dece

__all__ = ["dece"]
