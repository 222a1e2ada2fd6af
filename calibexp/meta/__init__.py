"""Meta-calibration (Bohdal, Yang, Hospedales, TMLR 2023): the differentiable ECE (``dece``),
the meta-learned hyper-parameters (``learners``) and the look-ahead training step (``step``)."""

from calibexp.meta.dece import dece

__all__ = ["dece"]
