"""Optuna studies over run configs: specs, the objective, one worker's loop, the summary."""

from calibexp.studies.spec import StudySpec, load_spec

__all__ = ["StudySpec", "load_spec"]
