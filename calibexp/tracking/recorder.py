"""What a run records at the end of every epoch: metrics, ``checkpoints/last.pt``,
``checkpoints/best.pt`` and, on diagram epochs, the val reliability diagram.

Records are written in *flushes*, at most every ``tracking.flush_every_s`` seconds and always
after the last epoch: one ``log_batch`` for every epoch since the previous flush (each metric at
its own step). On a SQLite store one ``log_batch`` costs ~10 ms, which is 5-10% of a 0.25 s
demo epoch but nothing against a 10 s+ CIFAR epoch; buffering keeps short epochs as cheap as
long ones (benchmarks/tracking_overhead.py). Checkpoints have a cadence of their own,
``tracking.checkpoint_every_s`` (and always after the last epoch): a CIFAR ResNet-50
``last.pt`` with momentum is ~190 MB, too big to upload every 10 s (benchmarks/registry.py).

Exactly-once metrics under any kill: a checkpoint flush queues ``last.pt`` *before* the
metrics, and ``last.pt`` carries the metrics of every epoch it covers that were not logged yet
(``pending_metrics``). A resume logs those it finds missing, then trains again from the
checkpoint's epoch; the epochs already in the store are not logged a second time
(``TrackedRun.logged_through``). A diagram epoch's val diagram is queued as the epoch ends, not
at the flush, so the tracking thread draws it while the next epoch trains (20 diagrams drawn at
a final flush made a 7 s demo run 1.5x slower); the worker is ordered, so every diagram of the
epochs a checkpoint covers is stored before that checkpoint, and a resume skips the steps
already stored (``TrackedRun.drawn``). Frames beyond ``eval.diagram_budget`` of the training
time are left out (``calibexp.diagrams.FrameBudget``).
``NoRecorder`` is the same loop with tracking off (for benchmarks).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from calibexp.diagrams import ValDiagrams
from calibexp.tracking.checkpoints import BEST, LAST, save_atomic
from calibexp.tracking.run import TrackedRun


class EpochRecorder:
    def __init__(
        self,
        run: TrackedRun,
        flush_every_s: float,
        checkpoint_every_s: float,
        epochs: int,
        diagram_budget: float | None,
    ) -> None:
        self.run = run
        self.flush_every_s = flush_every_s
        self.checkpoint_every_s = checkpoint_every_s
        self.epochs = epochs
        self.pending: dict[int, dict[str, float]] = {}  # epoch -> metrics, not logged yet
        self.stamps: dict[int, int] = {}  # epoch -> its metrics' timestamp (ms), fixed once
        self.diagrams = ValDiagrams(run, epochs, diagram_budget)
        self.best: dict[str, Any] | None = None  # a best epoch's weights, not written yet
        self.last_flush = self.last_checkpoint = time.monotonic()

    @classmethod
    def for_config(cls, run: TrackedRun, cfg: Any) -> "EpochRecorder":
        """The recorder an ``ExperimentConfig``'s tracking and eval sections ask for."""
        tracking = cfg.tracking
        return cls(
            run,
            tracking.flush_every_s,
            tracking.checkpoint_every_s,
            cfg.train.epochs,
            cfg.eval.diagram_budget,
        )

    def end_epoch(
        self,
        epoch: int,
        metrics: dict[str, float],
        snapshot: Callable[[], dict[str, Any]],
        improved: bool,
        diagram: dict[str, Any] | None = None,
    ) -> None:
        self.run.check_lease()  # a worker taken over stops at once, not at its next write
        self.pending[epoch] = metrics
        self.stamps[epoch] = int(time.time() * 1000)
        if diagram is not None:
            self.diagrams.log(epoch, diagram)
        if improved:
            state = snapshot()
            # A copy: the live weights keep changing until the next flush writes this one.
            self.best = {
                "model": {k: v.detach().clone() for k, v in state["model"].items()},
                "epoch": epoch,
                "metrics": metrics,
                "config": state["config"],
            }
        now, last = time.monotonic(), epoch == self.epochs - 1
        if last or now - self.last_flush >= self.flush_every_s:  # checkpoints ride on flushes
            due = last or now - self.last_checkpoint >= self.checkpoint_every_s
            self.flush(snapshot() if due else None)

    def flush(self, state: dict[str, Any] | None) -> None:
        """Write the pending epochs; with ``state``, the checkpoints first."""
        if state is not None:
            for path, arrays in state.pop("artifacts", {}).items():  # what the step learned
                self.run.log_arrays(arrays, path)
            state["pending_metrics"] = self.pending
            state["pending_timestamps"] = {e: self.stamps[e] for e in self.pending}
            self._save(state, LAST)  # serialised now: the weights change with the next step
            if self.best is not None:
                self._save(self.best, BEST)
                self.best = None
            self.last_checkpoint = time.monotonic()
        for epoch, metrics in self.pending.items():
            self.run.log_epoch(metrics, epoch, self.stamps.pop(epoch))
        self.run.write_metrics()
        self.pending = {}
        self.last_flush = time.monotonic()

    def _save(self, state: dict[str, Any], artifact: str) -> None:
        path = self.run.stage(artifact)
        save_atomic(state, path)
        self.run.upload(path, artifact)


class NoRecorder:
    def flush(self, state: dict[str, Any] | None) -> None:
        return None

    def end_epoch(
        self,
        epoch: int,
        metrics: dict[str, float],
        snapshot: Callable[[], dict[str, Any]],
        improved: bool,
        diagram: dict[str, Any] | None = None,
    ) -> None:
        return None
