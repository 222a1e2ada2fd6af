"""calibexp: calibration research on MLflow and Optuna.

from calibexp import load_config, run_experiment
result = run_experiment(load_config("configs/demo.yaml", ["train.epochs=2"]))
"""

from calibexp.config import ExperimentConfig, load_config
from calibexp.errors import CalibexpError
from calibexp.run import Outcome, RunResult, run_experiment

__all__ = [
    "CalibexpError",
    "ExperimentConfig",
    "Outcome",
    "RunResult",
    "load_config",
    "run_experiment",
]
