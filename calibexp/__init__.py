"""calibexp: calibration research on MLflow and Optuna.

from calibexp import load_config, run_experiment
result = run_experiment(load_config("configs/demo.yaml", ["train.epochs=2"]))
"""

from typing import Any

from calibexp.config import ExperimentConfig, load_config
from calibexp.errors import CalibexpError

_FROM_RUN = ("Outcome", "RunResult", "run_experiment")


def __getattr__(name: str) -> Any:
    """``calibexp.run_experiment`` and its results, imported on first use (PEP 562): training
    needs torch, torchvision and every registry, which a command that only reads the store
    (``report``) should not pay ~3 s to import."""
    if name in _FROM_RUN:
        from calibexp import run

        return getattr(run, name)
    raise AttributeError(f"module 'calibexp' has no attribute {name!r}")


__all__ = [
    "CalibexpError",
    "ExperimentConfig",
    "Outcome",
    "RunResult",
    "load_config",
    "run_experiment",
]
