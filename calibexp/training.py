"""The epoch loop: train, evaluate on val, record; and the state a checkpoint holds.

``fit`` reads as the algorithm: per epoch, the loss's schedule hook, one pass over the training
batches, the LR schedule, the val suite (and diagram) on val epochs, the best-so-far record, and
the recorder. It never branches on which loss, model or tracker it holds.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from calibexp.config import ExperimentConfig, to_dict
from calibexp.engine import TRAIN_KEYS, current_lr, predict, train_one_epoch
from calibexp.errors import EarlyStop
from calibexp.metrics import Predictions, suite_of
from calibexp.metrics.suite import suite_keys
from calibexp.parts import Parts
from calibexp.plots import reliability_of
from calibexp.seeding import epoch_generator, rng_state, set_rng_state
from calibexp.tracking.recorder import EpochRecorder, NoRecorder

# Optimiser param-group settings that say how the update is computed, not what it is.
EXECUTION_SETTINGS = ("fused", "foreach")


@dataclass
class BestSoFar:
    """The best value of ``eval.best_metric`` and the epoch it was reached."""

    mode: str
    value: float | None = None
    epoch: int = -1

    def update(self, value: float, epoch: int) -> bool:
        better = (
            self.value is None
            or math.isnan(self.value)
            or (value < self.value if self.mode == "min" else value > self.value)
        )
        if better and not math.isnan(value):
            self.value, self.epoch = value, epoch
            return True
        return False


def fit(
    parts: Parts,
    recorder: EpochRecorder | NoRecorder,
    start_epoch: int,
    best: BestSoFar,
    after_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> BestSoFar:
    """Train from ``start_epoch`` to ``train.epochs``; the val suite on val epochs, a val
    reliability diagram on diagram epochs, and a record every epoch."""
    cfg = parts.cfg
    val_epochs = set(cfg.eval.val_epochs(cfg.train.epochs))
    diagram_epochs = set(cfg.eval.diagram_epochs(cfg.train.epochs))
    for epoch in range(start_epoch, cfg.train.epochs):
        started = time.perf_counter()
        parts.loss.on_epoch_start(epoch)
        lr = current_lr(parts.optimizer)
        parts.step.begin_epoch(epoch, lr)
        batches = parts.train_loader.batches(epoch_generator(cfg.seed, epoch, parts.device))
        train = train_one_epoch(
            parts.step,
            batches,
            steps=len(parts.train_loader),
            progress=cfg.train.progress,
            desc=f"epoch {epoch + 1}/{cfg.train.epochs}",
            check_syncs=cfg.train.check_syncs,
        )
        parts.scheduler.step()
        metrics, diagram = {**train, "lr": lr}, None
        if epoch in val_epochs:
            val = Predictions(*predict(parts.model, parts.val_loader, parts.autocast))
            metrics.update(prefixed("val", suite_of(val, bins=cfg.eval.ece_bins)))
            if epoch in diagram_epochs:  # reuses the suite's softmax, order and smECE bandwidth
                diagram = reliability_of(val, bins=cfg.eval.ece_bins).to_dict()
        improved = cfg.eval.best_metric in metrics and best.update(
            metrics[cfg.eval.best_metric], epoch
        )
        recorder.end_epoch(
            epoch, metrics, lambda e=epoch: training_state(parts, e, best), improved, diagram
        )
        print_epoch(epoch, cfg.train.epochs, metrics, time.perf_counter() - started)
        if after_epoch is not None:
            try:
                after_epoch(epoch, metrics)
            except EarlyStop:
                recorder.flush(training_state(parts, epoch, best))  # keep what was trained
                raise
    return best


def epoch_metric_keys(cfg: ExperimentConfig) -> list[str]:
    """The metrics every run of ``cfg`` logs on each val epoch, under the names it logs them
    by: what a study may name as its objective."""
    return [*TRAIN_KEYS, *suite_keys("val", cfg.eval.ece_bins)]


def prefixed(split: str, metrics: dict[str, float]) -> dict[str, float]:
    return {f"{split}/{key}": value for key, value in metrics.items()}


def print_epoch(epoch: int, epochs: int, metrics: dict[str, float], seconds: float) -> None:
    shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "lr")
    print(
        f"epoch {epoch + 1}/{epochs}  {shown}  lr {metrics['lr']:.3g}  ({seconds:.2f} s)",
        flush=True,
    )


def training_state(parts: Parts, epoch: int, best: BestSoFar) -> dict[str, Any]:
    return {
        "model": parts.model.state_dict(),
        "optimizer": parts.optimizer.state_dict(),
        "scheduler": parts.scheduler.state_dict(),
        "epoch": epoch,
        "rng": rng_state(),
        "best": dataclasses.asdict(best),
        "config": to_dict(parts.cfg),
        "step": parts.step.state_dict(),  # the meta-learner and its optimiser, if any
        "artifacts": parts.step.artifacts(),  # logged beside the checkpoint (EpochRecorder)
    }


def restore(parts: Parts, state: dict[str, Any]) -> tuple[int, BestSoFar]:
    """Load a checkpoint into ``parts``; returns the next epoch and the best-so-far record."""
    parts.model.load_state_dict(state["model"])
    # How this machine runs the update (optim.fused, torch's foreach choice), not the dead
    # worker's: load_state_dict would bring back the param groups' saved settings.
    execution = [
        {k: g[k] for k in EXECUTION_SETTINGS if k in g} for g in parts.optimizer.param_groups
    ]
    parts.optimizer.load_state_dict(state["optimizer"])
    for group, settings in zip(parts.optimizer.param_groups, execution):
        group.update(settings)
    parts.scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    parts.step.load_state_dict(state.get("step", {}))
    return int(state["epoch"]) + 1, BestSoFar(**state["best"])
