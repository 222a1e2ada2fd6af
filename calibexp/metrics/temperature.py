"""Post-hoc calibrators, fitted on the val split only; each returns a temperature T > 0 by which
the logits are divided. Registered with ``split``, the tag its results are logged under:
``test_<split>/…`` for the test suite after calibration and ``<split>/temperature`` for T.

``temperature`` (split ``ts``): T = argmin_T NLL(z / T) on val (Guo et al., "On Calibration of
Modern Neural Networks", ICML 2017). Solved as a bounded 1-D problem on log T with SciPy's Brent
method: it always terminates inside the bounds, so T is finite and positive even when the val
set is 100% correct (NLL then keeps falling as T -> 0 and T stops at the lower bound). The common
``LBFGS(lr=0.01, max_iter=50)`` recipe can stop before the optimum; Brent's method has no step
size to tune.

``temperature_grid_ece`` (split ``ts_grid``): torrvision's protocol (Mukhoti et al., "Calibrating
Deep Neural Networks using Focal Loss", NeurIPS 2020; ``temperature_scaling.py`` with
``--cverror ece``): T ∈ {0.1, 0.2, …, 10.0}, the one with the lowest val ECE (equal-width bins),
the smallest T on ties as torrvision's strict ``<`` keeps the first. The published "(T)"
columns of the focal-loss papers are this T.
"""

from __future__ import annotations

import math

import torch
from scipy.optimize import minimize_scalar

from calibexp.errors import CalibexpError
from calibexp.metrics.calibration import ece
from calibexp.metrics.predictions import Predictions
from calibexp.registry import Registry

CALIBRATORS = Registry("calibrator")
LOG_T_BOUNDS = (math.log(0.01), math.log(100.0))
TORRVISION_GRID = tuple(round(0.1 * i, 1) for i in range(1, 101))  # 0.1, 0.2, ..., 10.0


def _checked(logits: torch.Tensor) -> torch.Tensor:
    if not torch.isfinite(logits).all():
        raise CalibexpError("cannot fit a temperature: the val logits contain NaN or inf")
    return logits


@CALIBRATORS.register("temperature", split="ts")
def fit_temperature(logits: torch.Tensor, targets: torch.Tensor, *, bins: int = 15) -> float:
    """The NLL-optimal temperature for ``logits`` on ``targets`` (``bins`` is unused: NLL has
    none; every calibrator takes the same arguments)."""
    z = _checked(logits).double()
    y = targets.long()

    def val_nll(log_t: float) -> float:
        return torch.nn.functional.cross_entropy(z / math.exp(log_t), y).item()

    result = minimize_scalar(
        val_nll, bounds=LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-5}
    )
    return float(math.exp(result.x))


@CALIBRATORS.register("temperature_grid_ece", split="ts_grid")
def fit_temperature_grid_ece(
    logits: torch.Tensor, targets: torch.Tensor, *, bins: int = 15
) -> float:
    """The T of ``TORRVISION_GRID`` with the lowest val ECE over ``bins`` equal-width bins."""
    z = _checked(logits).float()
    errors = torch.stack([ece(Predictions(z / t, targets), bins=bins) for t in TORRVISION_GRID])
    return TORRVISION_GRID[int(errors.argmin())]  # argmin returns the first minimum
