"""Which reliability diagrams a run logs, and where.

- Every diagram epoch (``eval.diagram_every``): the val diagram as one step of the image series
  ``reliability/val`` (step = the 0-based epoch index) and its data as
  ``tables/reliability_val/epoch_NNNN.json``, queued as the epoch ends so it is drawn on the
  tracking thread while the next epoch trains, frame by frame (``ReliabilityFrames``). Within
  ``eval.diagram_budget`` (``FrameBudget``): where epochs are much shorter than a frame, the
  series is thinned so drawing never slows training by more than that share; the tables are
  all logged, so any left-out frame can still be drawn from its table.
- At the end of training: ``plots/reliability_val_evolution.png``, the val diagrams of chosen
  epochs in a grid (``eval.evolution_epochs``, or up to 5 spread evenly), drawn from the logged
  tables, so a resumed run draws it the same way as an uninterrupted one.
- At the end of training: the evidence plots (``calibexp.plots.evidence``) from the run's own
  metric history: ``plots/evidence_components.png``, ``plots/ece_vs_acc.png`` and, for a gated
  loss, ``plots/gate_gradient.png``.
- At evaluation (``calibexp.evaluation``): test before and after each calibrator, alone and
  side by side.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from calibexp.plots import ReliabilityData, ReliabilityFrames, plot_reliability_grid

VAL_SERIES = "reliability/val"
VAL_TABLES = "tables/reliability_val"
EVOLUTION = "plots/reliability_val_evolution.png"
EVOLUTION_PANELS = 5


def epoch_title(epoch: int, epochs: int) -> str:
    return f"val after epoch {epoch + 1}/{epochs} (step {epoch}, 0-based)"


class FrameBudget:
    """A series' frames may take ``share`` of the wall time since the series began: a frame is
    drawn while the time spent drawing and storing the earlier ones is at most
    ``share`` × elapsed (so the first always is), and always when it is the last; ``share``
    None draws every frame.

    Why a budget and not a cheaper frame: on a machine whose cores training keeps busy every
    millisecond of drawing is taken from training, and a frame (~17 ms of matplotlib, ~11-20 ms
    of ``MlflowClient.log_image``'s PNG, webp thumbnail and store write on 2 CPU cores) is over
    10% of a 0.27 s demo epoch but 0.1% of a 30 s CIFAR epoch, whose every frame is drawn
    (benchmarks/tracking_overhead.py). TensorBoard likewise keeps a sample of an image series,
    not every step."""

    def __init__(self, share: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.share, self.clock = share, clock
        self.start, self.spent = clock(), 0.0

    def allows(self, last: bool = False) -> bool:
        if self.share is None or last:
            return True
        return self.spent <= self.share * (self.clock() - self.start)

    def charge(self, seconds: float) -> None:
        self.spent += seconds


class ValDiagrams:
    """The val image series of one run: each epoch's diagram and its table, once per step."""

    def __init__(self, run: Any, epochs: int, budget: float | None) -> None:
        self.run, self.epochs = run, epochs
        self.frames = ReliabilityFrames()  # used on the tracking thread only
        self.budget = FrameBudget(budget)  # read and charged on the tracking thread only

    def log(self, epoch: int, data: dict[str, Any]) -> None:
        if epoch in self.run.drawn:  # stored before a resume: not twice
            return
        self.run.log_json(data, f"{VAL_TABLES}/epoch_{epoch:04d}.json")
        self.run.log_image_series(
            partial(
                self.frames.pixels, ReliabilityData.from_dict(data), epoch_title(epoch, self.epochs)
            ),
            VAL_SERIES,
            epoch,
            self.budget,
            last=epoch == self.epochs - 1,
        )
        self.run.drawn.add(epoch)


def evolution_epochs(chosen: list[int], logged: list[int]) -> list[int]:
    """``chosen`` if given, else up to ``EVOLUTION_PANELS`` of the ``logged`` diagram epochs,
    evenly spread and always with the first and the last."""
    if chosen:
        return sorted(chosen)
    if len(logged) <= EVOLUTION_PANELS:
        return logged
    last = len(logged) - 1
    picks = {round(i * last / (EVOLUTION_PANELS - 1)) for i in range(EVOLUTION_PANELS)}
    return [logged[i] for i in sorted(picks)]


def log_evolution(run: Any, chosen: list[int], epochs: int) -> None:
    """Draw the evolution figure from the val tables already in the store (none: no figure)."""
    run.flush()  # the tables of the last epochs must be there first
    if not run.client.list_artifacts(run.run_id, VAL_TABLES):
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(run.client.download_artifacts(run.run_id, VAL_TABLES, tmp))
        tables = {int(p.stem.split("_")[1]): p for p in folder.glob("epoch_*.json")}
        picked = [e for e in evolution_epochs(chosen, sorted(tables)) if e in tables]
        panels = [
            (
                ReliabilityData.from_dict(json.loads(tables[e].read_text())),
                epoch_title(e, epochs),
            )
            for e in picked
        ]
    if panels:
        run.log_figure(
            partial(plot_reliability_grid, panels, "val reliability over training"), EVOLUTION
        )


EVIDENCE_COMPONENTS = "plots/evidence_components.png"
ECE_VS_ACC = "plots/ece_vs_acc.png"
GATE_GRADIENT = "plots/gate_gradient.png"


def log_evidence(run: Any, ece_key: str, title: str) -> None:
    """Draw the evidence plots from the run's metric history in the store (every epoch, the
    ones logged before a resume included)."""
    from calibexp.plots.evidence import (
        GATE_KEYS,
        plot_ece_vs_acc,
        plot_evidence_components,
        plot_gate_gradient,
    )

    run.flush()  # the last epochs' metrics must be in the store first
    logged = run.client.get_run(run.run_id).data.metrics
    keys = [k for k in logged if k.startswith("evidence/") or k in ("val/acc", ece_key)]
    history = {
        key: sorted((m.step, m.value) for m in run.client.get_metric_history(run.run_id, key))
        for key in keys
    }
    if any(k.startswith("evidence/") and k not in GATE_KEYS for k in history):
        run.log_figure(partial(plot_evidence_components, history, title), EVIDENCE_COMPONENTS)
    if "val/acc" in history and ece_key in history:
        run.log_figure(partial(plot_ece_vs_acc, history, ece_key, title), ECE_VS_ACC)
    if any(k in history for k in GATE_KEYS):
        run.log_figure(partial(plot_gate_gradient, history, title), GATE_GRADIENT)
