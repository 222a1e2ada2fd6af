"""Optuna samplers and pruners, registered like every other kind of component: a study spec's
``sampler: {name: tpe, seed: 0}`` and ``pruner: {name: median, n_warmup_steps: 2}`` are checked
against the builder's keyword-only settings before any trial (an unknown setting or a wrong type
is refused naming it), then built here. Settings not exposed keep Optuna's defaults."""

from __future__ import annotations

from typing import Optional

import optuna

from calibexp.registry import Registry

SAMPLERS = Registry("sampler")
PRUNERS = Registry("pruner")


@SAMPLERS.register("tpe")
def tpe(*, seed: Optional[int] = 0, n_startup_trials: int = 10) -> optuna.samplers.BaseSampler:
    """Tree-structured Parzen estimator (Bergstra et al., NeurIPS 2011). ``constant_liar``: workers
    running in parallel do not all propose the same point (optuna/optuna#1547)."""
    return optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=n_startup_trials, constant_liar=True
    )


@SAMPLERS.register("random")
def random(*, seed: Optional[int] = 0) -> optuna.samplers.BaseSampler:
    """Independent uniform draws from the space (Bergstra & Bengio, JMLR 2012)."""
    return optuna.samplers.RandomSampler(seed=seed)


@PRUNERS.register("none")
def none(epochs: int) -> optuna.pruners.BasePruner:
    """Every trial trains all its epochs."""
    return optuna.pruners.NopPruner()


@PRUNERS.register("median")
def median(
    epochs: int, *, n_startup_trials: int = 5, n_warmup_steps: int = 0, interval_steps: int = 1
) -> optuna.pruners.BasePruner:
    """Stop a trial whose best value so far is worse than the median of earlier trials' values
    at the same epoch (Golovin et al., KDD 2017, "median stopping rule")."""
    return optuna.pruners.MedianPruner(
        n_startup_trials=n_startup_trials,
        n_warmup_steps=n_warmup_steps,
        interval_steps=interval_steps,
    )


@PRUNERS.register("successive_halving")
def successive_halving(
    epochs: int,
    *,
    min_resource: Optional[int] = None,
    reduction_factor: int = 4,
    min_early_stopping_rate: int = 0,
) -> optuna.pruners.BasePruner:
    """Asynchronous successive halving (Li et al., MLSys 2020); ``min_resource: null`` lets
    Optuna estimate it from the first finished trial."""
    return optuna.pruners.SuccessiveHalvingPruner(
        min_resource="auto" if min_resource is None else min_resource,
        reduction_factor=reduction_factor,
        min_early_stopping_rate=min_early_stopping_rate,
    )


@PRUNERS.register("hyperband")
def hyperband(
    epochs: int, *, min_resource: int = 1, reduction_factor: int = 3
) -> optuna.pruners.BasePruner:
    """Hyperband (Li et al., JMLR 2018) over brackets of successive halving, up to the run's
    ``train.epochs``."""
    return optuna.pruners.HyperbandPruner(
        min_resource=min_resource, max_resource=epochs, reduction_factor=reduction_factor
    )
