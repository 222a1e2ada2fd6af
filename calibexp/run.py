"""One experiment, from a validated config to a finished MLflow run, with the MLflow store as
the run registry (``calibexp.tracking.registry``).

    outcome = run_experiment(load_config("configs/demo.yaml"))

The lifecycle, in order:

1. **claim**: the config's registry key is looked up in the target experiment before any data
   is built. FINISHED: nothing to train. Held by a live worker: nothing to train. Dead
   (KILLED, FAILED, or RUNNING with an expired lease): claim the next attempt and resume it.
   None: build the parts (bad settings fail before a claim or a run exists), claim attempt 1.
2. **open or resume** the run under a lease that a timer thread renews; a resumed run continues
   from its last checkpoint with its own logged config, except this machine's
   ``MACHINE_KEYS`` (data root, device, tracking).
3. **fit** (``calibexp.training``), recording metrics, checkpoints and diagrams.
4. **evaluate** once on test, before and after each calibrator fitted on val.
5. **finish**: FINISHED; or KILLED / FAILED with the reason in ``calibexp.end_reason``, never
   RUNNING. A worker whose lease was taken over writes nothing more and leaves the run to its
   new holder.

Under ``mlflow run``, a new run is the launcher run MLflow made for the command; a command that
trains nothing in it (done, held, or resuming another run) marks it as pointing at the run that
holds the result (``calibexp.tracking.launcher``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from mlflow.tracking import MlflowClient

from calibexp.config import (
    MACHINE_KEYS,
    ExperimentConfig,
    config_from_dict,
    flatten,
    run_key,
    to_yaml,
    with_machine_keys,
    with_overrides,
)
from calibexp.data import DataBundle
from calibexp.diagrams import VAL_SERIES, log_evidence, log_evolution
from calibexp.errors import CalibexpError, LeaseLost
from calibexp.evaluation import evaluate_and_log, headline_keys
from calibexp.headline import DESCRIPTION_TAG, headline
from calibexp.metrics.registry import metric_key
from calibexp.parts import Parts, build_parts
from calibexp.robustness import evaluate_robustness, evaluated_of
from calibexp.tracking.checkpoints import BEST, LAST, load_checkpoint
from calibexp.tracking.inputs import dataset_input
from calibexp.tracking.launcher import mark_launcher, take_launcher
from calibexp.tracking.names import RUN_NAME_TAG, run_name
from calibexp.tracking.ops_tags import ATTEMPT_TAG, FAILURES_TAG, HOST_TAG
from calibexp.tracking.recorder import EpochRecorder
from calibexp.tracking.registry import KEY_TAG, KeyState, Registry
from calibexp.tracking.run import (
    TrackedRun,
    experiment_id_for,
    get_run,
    host_tags,
    terminal_status,
    tracking_client,
)
from calibexp.training import BestSoFar, fit, restore

# The positions of each split's samples in the dataset's files (DataBundle.indices): arrays
# train, val, test, and meta_val where the run holds one out.
SPLITS_ARTIFACT = "splits.npz"
# The digest of those indices, the tag that says which samples a run was trained on.
SPLIT_DIGEST_TAG = "calibexp.split_digest"
# Why an eval.ood set was not evaluated (its one-line error); the run finishes regardless.
ROBUSTNESS_ERROR_TAG = "calibexp.robustness_error"


@dataclass
class TrialHooks:
    """How a study trial differs from a plain run: a child of the study's parent run (Optuna,
    not the registry, decides what a trial trains), data shared between the trials of one
    process, a call after every epoch (which may raise ``EarlyStop`` to prune), and no test
    evaluation (test is evaluated once, after the search)."""

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


@dataclass
class Outcome:
    """What ``run_experiment`` did with a config."""

    state: str  # trained | finished (already) | held (by a live worker) | gave_up
    run_id: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    attempt: int = 0
    host: str | None = None
    message: str = ""


# ----------------------------------------------------------------------------- the lifecycle


def run_experiment(
    cfg: ExperimentConfig | None = None,
    *,
    resume: str | None = None,
    force: bool = False,
    trial: TrialHooks | None = None,
    data_cache: dict[str, Any] | None = None,
) -> Outcome:
    """Train ``cfg`` as the registry decides (above); with ``force``, train a new run anyway
    (tagged ``calibexp.forced``); with ``resume=<run id>``, take that dead run over (``cfg``
    then only carries this machine's keys; see ``config_for_resume``); with ``trial``, train
    it as a study trial, outside the registry."""
    client = tracking_client()
    if cfg is not None:  # how long this run waits out a store that stops answering
        client.timeout_s = cfg.tracking.store_timeout_s
    if trial is not None:
        assert cfg is not None
        return _train_trial(client, cfg, trial)
    if resume:
        source = get_run(client, resume)
        cfg = cfg or config_for_resume(client, resume, [])
        experiment = source.info.experiment_id
        key = source.data.tags.get(KEY_TAG) or run_key(cfg)
    elif cfg is None:
        raise CalibexpError("run_experiment needs a config or a run id to resume")
    else:
        experiment = experiment_id_for(client, cfg.tracking.experiment)
        key = run_key(cfg) + (f"-forced-{uuid.uuid4().hex[:8]}" if force else "")
    registry = Registry(client, experiment, cfg.tracking)
    state = registry.state(key)  # 1. claim: decided before any data is built
    if resume:
        _check_resumable(resume, state)
    if state.kind in ("finished", "held", "exhausted"):
        return _nothing_to_train(client, state, cfg)
    if state.run is not None:  # 2. resume a dead run ...
        return _take_over(registry, key, state, cfg, data_cache)
    parts = build_parts(cfg, data_cache)  # ... or open a new one; bad settings fail here
    if not registry.claim(key, state.attempt + 1):
        return _nothing_to_train(client, registry.state(key), cfg)
    run = _open(registry, key, state.attempt + 1, cfg, parts.data)
    return _guarded_outcome(run, parts, None, state.attempt + 1)


def _open(
    registry: Registry,
    key: str,
    attempt: int,
    cfg: ExperimentConfig,
    data: DataBundle,
) -> TrackedRun:
    tags = {**run_tags(cfg, data), **host_tags(), KEY_TAG: key, ATTEMPT_TAG: str(attempt)}
    forced = key[len(run_key(cfg)) + 1 :]  # "forced-1a2b3c4d" for a forced re-run, else ""
    if forced:
        tags["calibexp.forced"] = "true"
    name = run_name(cfg, forced)
    lease = registry.lease("", key, attempt)
    tags.update(lease.tag())
    launched = take_launcher()  # the run `mlflow run` made for this command, if any
    if launched:
        run = TrackedRun.attach(registry.client, launched)
        run.set_tags({**tags, RUN_NAME_TAG: name})  # not the name MLflow drew for it
    else:
        run = TrackedRun.create(registry.client, registry.experiment_id, name, tags)
    lease.run_id = run.run_id
    run.hold(lease.start())
    record_config(run, cfg, data)
    print(f"calibexp: MLflow run {run.run_id}", flush=True)
    return run


def record_config(run: TrackedRun, cfg: ExperimentConfig, data: DataBundle) -> None:
    """What a run was made of: its params, its whole config and its data (a dataset input, and
    the positions of every split's samples as ``splits.npz``)."""

    def record() -> None:
        run.log_params(flatten(cfg))
        run.log_text(to_yaml(cfg), "config.yaml")
        run.log_arrays(data.indices, SPLITS_ARTIFACT)
        run.log_dataset(dataset_input(cfg, data.split_digest))
        # In the store before the first epoch: a run whose worker dies from here on can be
        # resumed by another (it reads config.yaml), and a store that refuses the upload fails
        # the run now, not epochs later.
        run.flush()

    # A failed upload ends the run FAILED with its reason, never left RUNNING.
    guarded(run, record, finish_on_success=False)


def describe(run: TrackedRun, cfg: ExperimentConfig, metrics: dict[str, float]) -> None:
    """Write the run's headline as its description and print it: the last thing a command
    that evaluated a run says."""
    name = get_run(run.client, run.run_id).info.run_name
    text = headline(name, cfg.tracking.config, metrics, cfg.eval.ece_bins, cfg.eval.calibrators)
    run.set_tags({DESCRIPTION_TAG: text})
    print(text, flush=True)


def _take_over(
    registry: Registry,
    key: str,
    state: KeyState,
    local: ExperimentConfig,
    data_cache: dict[str, Any] | None,
) -> Outcome:
    """Claim the next attempt of a dead run and continue it from its last checkpoint. The parts
    are built first, from the run's own config with this machine's keys: a machine that cannot
    build them (no data under its root) fails before it claims, and the run is left as it was."""
    attempt, run_id, client = state.attempt + 1, state.run.info.run_id, registry.client
    parts = build_parts(with_machine_keys(source_config(client, run_id), local), data_cache)
    require_same_split(run_id, state.run.data.tags, parts.data)
    if not registry.claim(key, attempt):
        return _nothing_to_train(client, registry.state(key), local)
    run = TrackedRun.attach(client, run_id)
    lease = registry.lease(run_id, key, attempt)
    run.hold(lease)
    taken = {**host_tags(), ATTEMPT_TAG: str(attempt), FAILURES_TAG: str(state.failures)}
    run.set_tags({**taken, **lease.tag()})
    lease.start()
    mark_launcher(client, run_id, f"resumed run {run_id}")

    def reopen() -> dict[str, Any] | None:
        try:
            checkpoint = load_checkpoint(client, run_id, LAST)
        except CalibexpError:  # died before its first checkpoint: train it from the start
            checkpoint = None
        history = client.get_metric_history(run_id, "train/loss")
        run.logged_through = max((m.step for m in history), default=-1)
        run.drawn = run.image_steps(VAL_SERIES)
        after = f"after epoch {checkpoint['epoch'] + 1}" if checkpoint else "from its start"
        print(
            f"calibexp: resuming MLflow run {run_id} {after} (attempt {attempt}, previous "
            f"holder {state.host or 'unknown'})",
            flush=True,
        )
        return checkpoint

    checkpoint = guarded(run, reopen, finish_on_success=False)
    return _guarded_outcome(run, parts, checkpoint, attempt)


def _guarded_outcome(
    run: TrackedRun, parts: Parts, checkpoint: dict[str, Any] | None, attempt: int
) -> Outcome:
    """3-5: fit, evaluate and finish, guarded."""
    result = guarded(run, lambda: _train_and_evaluate(run, parts, checkpoint))
    return Outcome("trained", run.run_id, result.metrics, attempt, host_tags()[HOST_TAG])


def _check_resumable(run_id: str, state: KeyState) -> None:
    if state.kind == "finished" and state.run.info.run_id == run_id:
        raise CalibexpError(
            f"run '{run_id}' already FINISHED; nothing to resume (re-evaluate it with "
            f"`mlflow run . -e evaluate -P run_id={run_id}`)"
        )
    if state.kind == "held":
        raise CalibexpError(
            f"run '{run_id}' is RUNNING on {state.host} (lease renewed {state.age_s:.0f} s ago, "
            "under tracking.stale_after_s); resume it once it is stale"
        )
    if state.run is None or state.run.info.run_id != run_id:
        raise CalibexpError(f"run '{run_id}' is not the registry's run of its config")


def _nothing_to_train(client: MlflowClient, state: KeyState, cfg: ExperimentConfig) -> Outcome:
    """Report a config that is done, held or given up; the launcher points at its run."""
    run_id = state.run.info.run_id if state.run is not None else None
    if state.kind == "finished":
        metrics = state.run.data.metrics
        shown = "  ".join(
            f"{k} {metrics[k]:.4f}" for k in headline_keys(cfg.eval.ece_bins) if k in metrics
        )
        message = f"already FINISHED as run {run_id}: {shown}"
        outcome = Outcome("finished", run_id, dict(metrics), state.attempt, message=message)
    elif state.kind == "held":
        message = (
            f"held by {state.host} (attempt {state.attempt}, lease renewed "
            f"{state.age_s:.0f} s ago){f' in run {run_id}' if run_id else ''}; nothing to train"
        )
        outcome = Outcome("held", run_id, {}, state.attempt, state.host, message)
    else:
        which = f"run {run_id}" if run_id else "this config"
        message = (
            f"{which} failed {state.failures} times (tracking.max_attempts); not tried "
            f"again. Last error: {state.last_error}"
        )
        outcome = Outcome("gave_up", run_id, {}, state.attempt, state.host, message)
    mark_launcher(client, run_id, message)
    print(f"calibexp: {message}", flush=True)
    return outcome


def config_for_resume(client: MlflowClient, run_id: str, overrides: list[str]) -> ExperimentConfig:
    """The config to resume ``run_id`` with: its own, plus ``overrides`` of this machine's keys
    only (``data.root=/other/disk``); an override that changes what the run computes is
    refused."""
    logged = source_config(client, run_id)
    if not overrides:
        return logged
    changed = with_overrides(logged, overrides)
    if run_key(changed) != run_key(logged):
        raise CalibexpError(
            f"resume continues run {run_id} with its own config; overrides may only set "
            f"this machine's keys ({', '.join(MACHINE_KEYS)}), not {' '.join(overrides)}"
        )
    return changed


def guarded(run: TrackedRun, body: Callable[[], Any], finish_on_success: bool = True) -> Any:
    """Run ``body``; the run ends FINISHED, or KILLED / FAILED with the reason, never RUNNING;
    except when the run was taken over (``LeaseLost``): then it is not ours to end."""
    try:
        result = body()
    except LeaseLost:
        run.release()
        raise
    except BaseException as exc:
        reason = (
            "interrupted (SIGINT or SIGTERM)"
            if isinstance(exc, KeyboardInterrupt)
            else (f"{type(exc).__name__}: {exc}")
        )
        try:
            run.finish(terminal_status(exc), reason)
        except LeaseLost:
            run.release()
            raise
        except Exception:  # noqa: BLE001 - the original error is the one to report
            pass
        raise
    if finish_on_success:
        run.finish(terminal_status(None))
    return result


def run_tags(cfg: ExperimentConfig, data: DataBundle) -> dict[str, str]:
    """The searchable ``calibexp.*`` tags of a run of ``cfg`` (in the registries' vocabulary),
    with the digest of the exact train/val/test indices it used."""
    return {
        "calibexp.run_key": run_key(cfg),
        SPLIT_DIGEST_TAG: data.split_digest,
        "calibexp.dataset": cfg.data.name,
        "calibexp.model": cfg.model.name,
        "calibexp.loss": cfg.loss.name,
        "calibexp.meta": cfg.meta.name,  # the meta-learner, or none
        "calibexp.seed": str(cfg.seed),
    }


def _train_trial(client: MlflowClient, cfg: ExperimentConfig, trial: TrialHooks) -> Outcome:
    parts = build_parts(cfg, trial.data_cache)  # bad settings fail before a run exists
    parent = get_run(client, trial.parent_run_id)
    tags = {**run_tags(cfg, parts.data), **host_tags(), **trial.tags}
    tags["mlflow.parentRunId"] = trial.parent_run_id  # by id, never the thread-local active run
    name = trial.run_name or run_name(cfg)
    run = TrackedRun.create(client, parent.info.experiment_id, name, tags)
    trial.run_id = run.run_id
    record_config(run, cfg, parts.data)
    print(f"calibexp: MLflow run {run.run_id}", flush=True)
    result = guarded(run, lambda: _train_and_evaluate(run, parts, None, trial))
    return Outcome("trained", run.run_id, result.metrics)


def _train_and_evaluate(
    run: TrackedRun,
    parts: Parts,
    checkpoint: dict[str, Any] | None,
    trial: TrialHooks | None = None,
) -> RunResult:
    cfg = parts.cfg
    if trial is None and checkpoint is not None:
        logged = get_run(run.client, run.run_id).data.metrics
        if "test/acc" in logged:  # died after its evaluation (logged last, in one batch)
            describe(run, cfg, dict(logged))
            return RunResult(run.run_id, dict(logged))
    start, best = 0, BestSoFar(cfg.eval.best_mode)
    if checkpoint is not None:
        start, best = restore(parts, checkpoint)
        # Epochs the checkpoint covers may not have been logged when the run died.
        stamps = checkpoint.get("pending_timestamps", {})  # the epochs' own timestamps
        for epoch, metrics in sorted(checkpoint["pending_metrics"].items()):
            run.log_epoch(metrics, epoch, stamps.get(epoch))
        run.logged_through = max(run.logged_through, checkpoint["epoch"])
    recorder = EpochRecorder.for_config(run, cfg)
    fit(parts, recorder, start, best, trial.after_epoch if trial else None)
    log_evolution(run, cfg.eval.evolution_epochs, cfg.train.epochs)
    log_evidence(run, metric_key("val", "ece", cfg.eval.ece_bins), run_name(cfg))
    for path, figure in parts.step.figures().items():  # what a meta-learner learned
        run.log_figure(figure, path)
    if trial is not None:  # test is evaluated once, after the search, never inside it
        return RunResult(run.run_id, {})
    weights_epoch = cfg.train.epochs - 1  # the epoch of the weights evaluated on test
    if cfg.eval.test_checkpoint == "best":
        run.flush()  # best.pt must be in the store before it is read back
        best_state = load_checkpoint(run.client, run.run_id, BEST)
        parts.model.load_state_dict(best_state["model"])
        weights_epoch = int(best_state["epoch"])
    metrics = evaluate_and_log(
        run,
        parts.model,
        parts.val_loader,
        parts.test_loader,
        parts.autocast,
        bins=cfg.eval.ece_bins,
        calibrators=cfg.eval.calibrators,
        step=cfg.train.epochs - 1,
        domain_names=parts.data.domain_names,
        seen_domains=parts.data.seen_domains,
    )
    if cfg.eval.ood:
        metrics.update(_log_robustness(run, parts, weights_epoch))
    if cfg.tracking.log_model:
        run.flush()
        _log_model(run, parts)
    describe(run, cfg, metrics)
    return RunResult(run.run_id, metrics)


def _log_robustness(run: TrackedRun, parts: Parts, weights_epoch: int) -> dict[str, float]:
    """``eval.ood``'s sets, logged into the run; a set that cannot be evaluated (its files
    missing or damaged) is reported in one line and tagged, and the run still finishes: an
    evaluation added to a trained run never fails it."""
    cfg = parts.cfg
    loaders = (parts.val_loader, parts.test_loader)
    evaluated = evaluated_of(cfg, parts.model, parts.data, parts.device, loaders, weights_epoch)
    try:
        metrics, errors = evaluate_robustness(
            run, evaluated, cfg.eval.ood, extra=cfg.eval.extra_corruptions
        )
    except (KeyboardInterrupt, LeaseLost):
        raise
    except Exception as err:  # noqa: BLE001 - a bug here must not fail what was trained
        metrics, errors = {}, [f"{type(err).__name__}: {err}"]
    for line in errors:
        print(f"calibexp: robustness not evaluated: {line}", flush=True)
    if errors:
        run.set_tags({ROBUSTNESS_ERROR_TAG: "; ".join(errors)[:5000]})
    return metrics


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
            logged = yaml.safe_load(handle)
    return config_from_dict(with_split_of_its_time(logged))


def with_split_of_its_time(logged: dict[str, Any]) -> dict[str, Any]:
    """A logged config as the run was trained: one logged before ``data.split`` existed held
    its val out by calibexp's earlier ``permutation``, which a resume or re-evaluation must
    rebuild (the default is now the references' split)."""
    import inspect

    from calibexp.data import DATASETS

    data = logged.get("data") or {}
    name = data.get("name")
    if name in DATASETS.names() and "split" in inspect.signature(DATASETS.get(name)).parameters:
        data.setdefault("split", "permutation")
    return logged


def require_same_split(run_id: str, tags: dict[str, str], data: DataBundle) -> None:
    """Refuse to continue or evaluate a run on other samples than it was trained on."""
    logged = tags.get(SPLIT_DIGEST_TAG)
    if logged is not None and logged != data.split_digest:
        raise CalibexpError(
            f"run '{run_id}' was trained on split {logged}, but its config builds split "
            f"{data.split_digest} here: its dataset files or split settings differ from those it "
            "was trained with; point data.root at the files it was trained on"
        )
