"""What a run is called in the MLflow UI: said by its config, never drawn at random.

MLflow draws a random run name (``overjoyed-slug-911``) from Python's ``random`` when none is
given; a run seeded before its creation would then get the same name as every other run of that
seed. Every run calibexp creates is given one of these names instead, and a run ``mlflow run``
created for the command is renamed (the ``mlflow.runName`` tag).
"""

from __future__ import annotations

from typing import Any

RUN_NAME_TAG = "mlflow.runName"


def run_name(cfg: Any, forced: str = "") -> str:
    """``tracking.run_name``, else ``{dataset}-{model}-{loss}-s{seed}`` (``cifar10-resnet50-
    focal-s0``), with ``+{meta-learner}`` after the loss of a meta-calibration run
    (``digits-small_cnn-ce+label_smoothing_nonuniform-s0``); a forced re-run of a trained config
    (``forced``: its key's suffix) adds it, so the repeat is told apart from the original."""
    if cfg.tracking.run_name:
        return cfg.tracking.run_name
    loss = f"{cfg.loss.name}+{cfg.meta.name}" if cfg.meta.enabled else cfg.loss.name
    name = f"{cfg.data.name}-{cfg.model.name}-{loss}-s{cfg.seed}"
    return f"{name}-{forced}" if forced else name


def trial_name(study: str, number: int) -> str:
    """A study trial: ``{study}-t{number}`` (Optuna's trial number, 0-based)."""
    return f"{study}-t{number}"


def evaluation_name(source_name: str) -> str:
    """A re-evaluation of a checkpoint: ``eval-of-{source run's name}``."""
    return f"eval-of-{source_name}"


def study_name(study: str) -> str:
    """A study's parent run."""
    return f"study-{study}"
