"""One experiment, from a validated config to a finished MLflow run.

    result = run_experiment(load_config("configs/demo.yaml"))

1. open the run (the one ``mlflow run`` created, a resumed one, or a new one) and record what
   defines it: flattened params, tags, ``config.yaml``;
2. build data, model, loss, optimiser and schedule from the registries;
3. train epoch by epoch, recording metrics and checkpoints (``fit``);
4. evaluate once on test, before and after temperature scaling fitted on val (``evaluation``).

A run that raises or is interrupted ends FAILED or KILLED with the reason in the tag
``calibexp.end_reason``; it is never left RUNNING, and its last checkpoint stays usable.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from mlflow.tracking import MlflowClient

from calibexp.config import ExperimentConfig, config_from_dict, flatten, run_key, to_dict, to_yaml
from calibexp.data import DATASETS, DataBundle, DeviceLoader
from calibexp.diagrams import VAL_SERIES, log_evolution, log_val_diagram
from calibexp.engine import autocast_for, current_lr, predict, resolve_device, train_one_epoch
from calibexp.errors import CalibexpError, EarlyStop
from calibexp.evaluation import evaluate_and_log
from calibexp.losses import LOSSES
from calibexp.metrics import Predictions, suite_of
from calibexp.models import BACKBONES
from calibexp.optim import OPTIMIZERS, SCHEDULES
from calibexp.plots import reliability_of
from calibexp.registry import hyperparameters
from calibexp.seeding import epoch_generator, rng_state, seed_everything, set_rng_state
from calibexp.tracking.checkpoints import BEST, LAST, load_checkpoint
from calibexp.tracking.liveness import assert_resumable
from calibexp.tracking.recorder import EpochRecorder, NoRecorder
from calibexp.tracking.run import (
    TrackedRun,
    experiment_id_for,
    get_run,
    host_tags,
    terminal_status,
    tracking_client,
)


@dataclass
class Parts:
    """Everything one run trains and evaluates with."""

    cfg: ExperimentConfig
    device: torch.device
    data: DataBundle
    train_loader: DeviceLoader
    val_loader: DeviceLoader
    test_loader: DeviceLoader
    model: torch.nn.Module
    loss: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    autocast: Any


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


@dataclass
class TrialHooks:
    """How a study trial differs from a plain run: a child of the study's parent run, data
    shared between the trials of one process, a call after every epoch (which may raise
    ``EarlyStop`` to prune), and no test evaluation (test is evaluated once, after the search)."""

    parent_run_id: str
    tags: dict[str, str]
    after_epoch: Callable[[int, dict[str, float]], None]
    data_cache: dict[str, Any]
    run_name: str | None = None
    run_id: str | None = None  # set when the trial's run is opened


@dataclass
class RunResult:
    run_id: str
    metrics: dict[str, float]


# ----------------------------------------------------------------------------- building


def build_data(
    cfg: ExperimentConfig, device: torch.device, cache: dict[str, Any] | None = None
) -> tuple[DataBundle, list[DeviceLoader]]:
    """The dataset and its loaders; with ``cache``, a dataset already built with the same
    settings in this process is reused (study trials load the data once)."""
    key = repr(sorted(hyperparameters(cfg.data).items())) + cfg.data.name
    if cache is not None and key in cache:
        data = cache[key]
    else:
        data = DATASETS.build(cfg.data.name, **hyperparameters(cfg.data))
        if cache is not None:
            cache[key] = data
    loaders = [
        DeviceLoader(
            data.train, cfg.train.batch_size, device, data.mean, data.std, data.train_augment
        ),
        DeviceLoader(data.val, cfg.eval.batch_size, device, data.mean, data.std),
        DeviceLoader(data.test, cfg.eval.batch_size, device, data.mean, data.std),
    ]
    return data, loaders


def build_model(cfg: ExperimentConfig, data: DataBundle, device: torch.device) -> torch.nn.Module:
    model = BACKBONES.build(
        cfg.model.name, data.num_classes, data.in_channels, **hyperparameters(cfg.model)
    )
    if device.type == "cuda":  # NHWC convolutions are the fast ones on tensor cores
        model = model.to(memory_format=torch.channels_last)
    return model.to(device)


def build_parts(cfg: ExperimentConfig, data_cache: dict[str, Any] | None = None) -> Parts:
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed, cfg.deterministic)
    data, (train_loader, val_loader, test_loader) = build_data(cfg, device, data_cache)
    model = build_model(cfg, data, device)
    optimizer = OPTIMIZERS.build(cfg.optim.name, model.parameters(), **hyperparameters(cfg.optim))
    return Parts(
        cfg=cfg,
        device=device,
        data=data,
        train_loader=train_loader,
        val_loader=val_loader,
        test_loader=test_loader,
        model=model,
        loss=LOSSES.build(cfg.loss.name, **hyperparameters(cfg.loss)).to(device),
        optimizer=optimizer,
        scheduler=SCHEDULES.build(cfg.schedule.name, optimizer, **hyperparameters(cfg.schedule)),
        autocast=autocast_for(device, cfg.train.precision),
    )


# ----------------------------------------------------------------------------- training


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
        batches = parts.train_loader.batches(epoch_generator(cfg.seed, epoch, parts.device))
        train = train_one_epoch(
            parts.model,
            parts.loss,
            parts.optimizer,
            batches,
            steps=len(parts.train_loader),
            autocast=parts.autocast,
            grad_clip=cfg.train.grad_clip,
            progress=cfg.train.progress,
            desc=f"epoch {epoch + 1}/{cfg.train.epochs}",
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


def prefixed(split: str, metrics: dict[str, float]) -> dict[str, float]:
    return {f"{split}/{key}": value for key, value in metrics.items()}


def print_epoch(epoch: int, epochs: int, metrics: dict[str, float], seconds: float) -> None:
    shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "lr")
    print(
        f"epoch {epoch + 1}/{epochs}  {shown}  lr {metrics['lr']:.3g}  ({seconds:.1f} s)",
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
    }


def restore(parts: Parts, state: dict[str, Any]) -> tuple[int, BestSoFar]:
    """Load a checkpoint into ``parts``; returns the next epoch and the best-so-far record."""
    parts.model.load_state_dict(state["model"])
    parts.optimizer.load_state_dict(state["optimizer"])
    parts.scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    return int(state["epoch"]) + 1, BestSoFar(**state["best"])


# ----------------------------------------------------------------------------- the run


def run_experiment(
    cfg: ExperimentConfig | None = None,
    *,
    resume: str | None = None,
    trial: TrialHooks | None = None,
) -> RunResult:
    """Train and evaluate ``cfg`` into an MLflow run; or, with ``resume=<run id>``, continue that
    run from its last checkpoint with its own logged config; or, with ``trial``, train it as a
    study trial (``TrialHooks``)."""
    client = tracking_client()
    if resume:
        run, cfg, checkpoint = _reopen(client, resume)
        parts = guarded(run, lambda: build_parts(cfg), finish_on_success=False)
    else:
        if cfg is None:
            raise CalibexpError("run_experiment needs a config or a run id to resume")
        # bad data or model settings fail before a run exists
        parts = build_parts(cfg, trial.data_cache if trial else None)
        run, checkpoint = _open_new(client, cfg, parts.data, trial), None
    return guarded(run, lambda: _train_and_evaluate(run, parts, checkpoint, trial))


def guarded(run: TrackedRun, body: Callable[[], Any], finish_on_success: bool = True) -> Any:
    """Run ``body``; the run ends FINISHED, or KILLED / FAILED with the reason, never RUNNING."""
    try:
        result = body()
    except BaseException as exc:
        reason = (
            "interrupted (SIGINT or SIGTERM)"
            if isinstance(exc, KeyboardInterrupt)
            else (f"{type(exc).__name__}: {exc}")
        )
        try:
            run.finish(terminal_status(exc), reason)
        except Exception:  # noqa: BLE001 - the original error is the one to report
            pass
        raise
    if finish_on_success:
        run.finish(terminal_status(None))
    return result


def run_tags(cfg: ExperimentConfig, data: DataBundle) -> dict[str, str]:
    """The searchable tags of a run of ``cfg`` (design.md: MLflow conventions), with the digest
    of the exact train/val/test indices it used."""
    return {
        "calibexp.run_key": run_key(cfg),
        "calibexp.split_digest": data.split_digest,
        "calibexp.dataset": cfg.data.name,
        "calibexp.model": cfg.model.name,
        "calibexp.loss": cfg.loss.name,
        "calibexp.seed": str(cfg.seed),
    }


def _open_new(
    client: MlflowClient, cfg: ExperimentConfig, data: DataBundle, trial: TrialHooks | None = None
) -> TrackedRun:
    tags = {**run_tags(cfg, data), **host_tags()}
    if trial is None:
        run = TrackedRun.for_this_command(
            client,
            lambda: experiment_id_for(client, cfg.tracking.experiment),
            cfg.tracking.run_name,
            tags,
        )
    else:  # a child of the study's run, by explicit id (never MLflow's thread-local active run)
        parent = get_run(client, trial.parent_run_id)
        tags.update(trial.tags)
        tags["mlflow.parentRunId"] = trial.parent_run_id
        name = trial.run_name or cfg.tracking.run_name
        run = TrackedRun.create(client, parent.info.experiment_id, name, tags)
        trial.run_id = run.run_id
    run.log_params(flatten(cfg))
    run.log_text(to_yaml(cfg), "config.yaml")
    print(f"calibexp: MLflow run {run.run_id}", flush=True)
    return run


def _reopen(
    client: MlflowClient, run_id: str
) -> tuple[TrackedRun, ExperimentConfig, dict[str, Any]]:
    previous = get_run(client, run_id)
    checkpoint = load_checkpoint(client, run_id, LAST)
    cfg = config_from_dict(checkpoint["config"])
    assert_resumable(previous, cfg.tracking.stale_after_s)
    launcher = os.environ.pop("MLFLOW_RUN_ID", None)
    if launcher and launcher != run_id:  # `mlflow run -P resume=...` made a run of its own
        client.set_tag(launcher, "calibexp.resumed_run_id", run_id)
        client.set_tag(launcher, "mlflow.note.content", f"Launcher only: resumed run {run_id}.")
    run = TrackedRun.attach(client, run_id)
    run.set_tags(host_tags())
    history = client.get_metric_history(run_id, "train/loss")
    run.logged_through = max((m.step for m in history), default=-1)
    print(
        f"calibexp: resuming MLflow run {run_id} after epoch {checkpoint['epoch'] + 1}", flush=True
    )
    return run, cfg, checkpoint


def _train_and_evaluate(
    run: TrackedRun,
    parts: Parts,
    checkpoint: dict[str, Any] | None,
    trial: TrialHooks | None = None,
) -> RunResult:
    cfg = parts.cfg
    start, best = 0, BestSoFar(cfg.eval.best_mode)
    if checkpoint is not None:
        start, best = restore(parts, checkpoint)
        # Epochs the checkpoint covers may not have been logged when the run died.
        for epoch, metrics in sorted(checkpoint["pending_metrics"].items()):
            run.log_epoch(metrics, epoch)
        drawn = run.image_steps(VAL_SERIES)
        for epoch, diagram in sorted(checkpoint.get("pending_diagrams", {}).items()):
            if epoch not in drawn:
                log_val_diagram(run, epoch, cfg.train.epochs, diagram)
        run.logged_through = max(run.logged_through, checkpoint["epoch"])
    recorder = EpochRecorder(run, cfg.tracking.flush_every_s, cfg.train.epochs)
    fit(parts, recorder, start, best, trial.after_epoch if trial else None)
    log_evolution(run, cfg.eval.evolution_epochs, cfg.train.epochs)
    if trial is not None:  # test is evaluated once, after the search, never inside it
        return RunResult(run.run_id, {})
    if cfg.eval.test_checkpoint == "best":
        run.flush()  # best.pt must be in the store before it is read back
        parts.model.load_state_dict(load_checkpoint(run.client, run.run_id, BEST)["model"])
    metrics = evaluate_and_log(
        run,
        parts.model,
        parts.val_loader,
        parts.test_loader,
        parts.autocast,
        bins=cfg.eval.ece_bins,
        calibrators=cfg.eval.calibrators,
        step=cfg.train.epochs - 1,
    )
    if cfg.tracking.log_model:
        run.flush()
        _log_model(run, parts)
    return RunResult(run.run_id, metrics)


def _log_model(run: TrackedRun, parts: Parts) -> None:
    """Register the final model as an MLflow LoggedModel (pickle format with a pinned requirement:
    requirement inference costs 5-16 s per call, pt2 export needs an input example)."""
    import mlflow

    example = parts.data.val.images[:2].float().numpy()
    with mlflow.start_run(run_id=run.run_id):
        mlflow.pytorch.log_model(
            parts.model.cpu(),
            name="model",
            serialization_format="pickle",
            pip_requirements=[f"torch=={torch.__version__}"],
            input_example=example,
        )
    parts.model.to(parts.device)


def source_config(client: MlflowClient, run_id: str) -> ExperimentConfig:
    """The resolved config a run was trained with (its ``config.yaml`` artifact)."""
    import tempfile

    import yaml

    get_run(client, run_id)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = client.download_artifacts(run_id, "config.yaml", tmp)
        except Exception:  # noqa: BLE001 - missing artifact, whatever the store says
            raise CalibexpError(
                f"run '{run_id}' has no config.yaml artifact; it was not made by calibexp"
            ) from None
        with open(local) as handle:
            return config_from_dict(yaml.safe_load(handle))
