"""Evaluate a finished run's checkpoint again.

- ``reevaluate`` (the ``evaluate`` entry): into a new MLflow run linked to it, with the tags
  ``calibexp.source_run_id`` and ``mlflow.parentRunId`` (the UI nests it under the source when
  both are in one experiment), the source's config and params, and exactly the end-of-run
  evaluation that ``train`` logs.
- ``robustness_of_run`` (the ``ood`` entry): OoD detection and calibration under shift
  (``calibexp.robustness``), logged into the run itself, which stays FINISHED.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from calibexp.config import ExperimentConfig
from calibexp.data import DataBundle, DeviceLoader
from calibexp.engine import autocast_for, resolve_device
from calibexp.errors import CalibexpError
from calibexp.evaluation import evaluate_and_log
from calibexp.parts import build_data, build_model
from calibexp.robustness import default_sets, evaluate_robustness, evaluated_of, require_sets
from calibexp.run import (
    ROBUSTNESS_ERROR_TAG,
    RunResult,
    config_for_resume,
    describe,
    guarded,
    record_config,
    require_same_split,
    run_tags,
)
from calibexp.seeding import seed_everything
from calibexp.tracking.checkpoints import load_checkpoint
from calibexp.tracking.launcher import mark_launcher
from calibexp.tracking.names import evaluation_name
from calibexp.tracking.run import TrackedRun, get_run, host_tags, tracking_client


@dataclass
class Trained:
    """A run's model with the weights of one checkpoint, and the data it was trained on."""

    source: Any  # the MLflow run
    cfg: ExperimentConfig
    which: str  # last | best
    state: dict[str, Any]
    device: torch.device
    data: DataBundle
    val_loader: DeviceLoader
    test_loader: DeviceLoader
    model: torch.nn.Module


def load_trained(
    client: Any, run_id: str, checkpoint: str | None, overrides: list[str] | None = None
) -> Trained:
    """``run_id``'s config (with ``overrides`` of this machine's keys only: ``data.root``,
    ``device``), its data rebuilt and checked to be the same split, and its model with the
    ``checkpoint`` weights (default: the run's ``eval.test_checkpoint``)."""
    source = get_run(client, run_id)
    cfg = config_for_resume(client, run_id, overrides or [])
    which = checkpoint or cfg.eval.test_checkpoint
    state = load_checkpoint(client, run_id, f"checkpoints/{which}.pt")
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed, cfg.deterministic)
    data, (_, val_loader, test_loader) = build_data(cfg, device)
    require_same_split(run_id, source.data.tags, data)
    model = build_model(cfg, data, device)
    model.load_state_dict(state["model"])
    return Trained(source, cfg, which, state, device, data, val_loader, test_loader, model)


def reevaluate(run_id: str, checkpoint: str | None = None) -> RunResult:
    client = tracking_client()
    trained = load_trained(client, run_id, checkpoint)
    source, cfg, which, state = trained.source, trained.cfg, trained.which, trained.state
    data, model, device = trained.data, trained.model, trained.device
    val_loader, test_loader = trained.val_loader, trained.test_loader

    tags = {
        **run_tags(cfg, data),
        **host_tags(),
        "calibexp.source_run_id": run_id,
        "mlflow.parentRunId": run_id,
        "calibexp.checkpoint": which,
        "calibexp.checkpoint_epoch": str(state["epoch"]),
    }
    run = TrackedRun.for_this_command(
        client,
        lambda: source.info.experiment_id,
        evaluation_name(source.info.run_name or run_id[:8]),
        tags,
    )
    record_config(run, cfg, data)
    print(
        f"calibexp: evaluating run {run_id} ({which} checkpoint, epoch {state['epoch'] + 1}) "
        f"into MLflow run {run.run_id}",
        flush=True,
    )

    def evaluate() -> RunResult:
        metrics = evaluate_and_log(
            run,
            model,
            val_loader,
            test_loader,
            autocast_for(device, cfg.train.precision),
            bins=cfg.eval.ece_bins,
            calibrators=cfg.eval.calibrators,
            step=int(state["epoch"]),
            domain_names=data.domain_names,
            seen_domains=data.seen_domains,
        )
        describe(run, cfg, metrics)
        return RunResult(run.run_id, metrics)

    return guarded(run, evaluate)


def robustness_of_run(
    run_id: str,
    sets: list[str] | None = None,
    *,
    checkpoint: str | None = None,
    extra: bool = False,
    overrides: list[str] | None = None,
) -> dict[str, float]:
    """Evaluate a FINISHED run on ``sets`` (default: its dataset's ``robustness`` sets) and log
    the results into it; the run keeps its status. A set that cannot be evaluated raises its
    one-line error after the others are logged."""
    require_sets(sets or [])
    client = tracking_client()
    status = get_run(client, run_id).info.status
    if status != "FINISHED":
        raise CalibexpError(
            f"run '{run_id}' is {status}; -e ood evaluates a FINISHED run (train or resume it "
            "first)"
        )
    trained = load_trained(client, run_id, checkpoint, overrides)
    cfg = trained.cfg
    chosen = list(sets) if sets else list(default_sets(cfg.data.name))
    if not chosen:
        raise CalibexpError(
            f"dataset {cfg.data.name} has no default robustness sets; name them: -P sets=..."
        )
    loaders = (trained.val_loader, trained.test_loader)
    step = int(trained.state["epoch"])
    evaluated = evaluated_of(cfg, trained.model, trained.data, trained.device, loaders, step)
    run = TrackedRun(client, run_id)  # writes only: the status is left as it is
    mark_launcher(client, run_id, f"robustness of run {run_id} logged into it")
    print(
        f"calibexp: robustness of run {run_id} ({trained.which} checkpoint, epoch "
        f"{step + 1}) on {', '.join(chosen)}",
        flush=True,
    )
    try:
        metrics, errors = evaluate_robustness(run, evaluated, chosen, extra=extra)
        run.flush()
        logged = get_run(client, run_id)
        # every set the training tried, again, with the extra corruptions if it had them
        retried = set(cfg.eval.ood) <= set(chosen) and (extra or not cfg.eval.extra_corruptions)
        if retried and not errors and ROBUSTNESS_ERROR_TAG in logged.data.tags:
            client.delete_tag(run_id, ROBUSTNESS_ERROR_TAG)  # what failed then succeeded now
        describe(run, cfg, dict(logged.data.metrics))  # the headline, now with these
    finally:
        run.release()
    if errors:
        raise CalibexpError("; ".join(errors))
    return metrics
