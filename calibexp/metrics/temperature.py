"""Post-hoc calibrators, fitted on the val split only.

``temperature``: T = argmin_T NLL(z / T) on val (Guo et al., "On Calibration of Modern Neural
Networks", ICML 2017). Solved as a bounded 1-D problem on log T with SciPy's Brent method:
it always terminates inside the bounds, so T is finite and positive even when the val set is
100% correct (NLL then keeps falling as T -> 0 and T stops at the lower bound). The common
``LBFGS(lr=0.01, max_iter=50)`` recipe often stops far from the optimum (performance.md §6).
"""

from __future__ import annotations

import math

import torch
from scipy.optimize import minimize_scalar

from calibexp.errors import CalibexpError
from calibexp.registry import Registry

CALIBRATORS = Registry("calibrator")
LOG_T_BOUNDS = (math.log(0.01), math.log(100.0))


@CALIBRATORS.register("temperature")
def fit_temperature(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """The NLL-optimal temperature for ``logits`` (float32 or wider) on ``targets``."""
    if not torch.isfinite(logits).all():
        raise CalibexpError("cannot fit a temperature: the val logits contain NaN or inf")
    z = logits.double()
    y = targets.long()

    def val_nll(log_t: float) -> float:
        return torch.nn.functional.cross_entropy(z / math.exp(log_t), y).item()

    result = minimize_scalar(
        val_nll, bounds=LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-5}
    )
    return float(math.exp(result.x))
