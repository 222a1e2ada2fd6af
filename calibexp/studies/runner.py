"""One study worker: create or join the study, run trials through the same ``run.py`` path as a
plain run, and, when the budget is spent, log the summary and evaluate the best configuration on
test once.

MLflow layout: the study is one parent run (tags ``calibexp.study``, ``calibexp.study_storage``,
``calibexp.spec_digest``), created once and recorded in the study's user attributes; every trial
is a child run by explicit ``mlflow.parentRunId`` (never MLflow's thread-local active run, never
``optuna_integration.MLflowCallback``), tagged ``optuna.trial_number`` and
``calibexp.trial_state`` (COMPLETE / PRUNED / FAIL) and named ``{study}-t{number}``. A pruned
trial's run ends FINISHED (it did what the pruner asked), with the pruner's reason in
``calibexp.end_reason``. The parent holds the spec (params ``study.*`` and ``space.*``, the
artifact ``study/spec.yaml``); the Optuna study names its objectives (``set_metric_names``).

Storage: an Optuna RDB storage with a heartbeat, so a worker killed mid-trial leaves no RUNNING
trial: the stale trial is marked FAIL and retried once (``RetryHeartbeatStaleTrialCallback``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from calibexp.config import load_config, override
from calibexp.errors import CalibexpError, EarlyStop
from calibexp.headline import DESCRIPTION_TAG
from calibexp.registry import hyperparameters
from calibexp.studies.samplers import PRUNERS, SAMPLERS
from calibexp.studies.spec import Parameter, StudySpec
from calibexp.tracking.launcher import launcher_run_id, mark_launcher
from calibexp.tracking.names import RUN_NAME_TAG, study_name, trial_name
from calibexp.tracking.registry import Registry
from calibexp.tracking.run import (
    TrackedRun,
    end_run,
    experiment_id_for,
    get_run,
    host_tags,
    tracking_client,
)
from calibexp.tracking.store import redact

DEFAULT_STORAGE = "sqlite:///optuna.db"


def default_storage() -> str:
    """A SQLite study file beside a SQLite MLflow store (one process); else ./optuna.db."""
    tracking = os.environ.get("MLFLOW_TRACKING_URI", "")
    if tracking.startswith("sqlite:///"):
        return f"sqlite:///{Path(tracking[len('sqlite:///') :]).with_name('optuna.db')}"
    return DEFAULT_STORAGE


PARENT_ATTR = "mlflow_parent_run_id"
FINAL_ATTR = "final_evaluation"


class SurplusTrial(Exception):
    """Raised by a trial that started after the study's budget was taken by older trials."""


def open_storage(url: str, heartbeat_s: float = 30) -> optuna.storages.RDBStorage:
    """The study storage, with heartbeat and one retry of a trial whose worker died."""
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 300}}
    try:
        with quiet_experimental():
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=max(1, round(heartbeat_s)),
                grace_period=max(3, round(3 * heartbeat_s)),
                heartbeat_stale_trial_callback=retry_and_close_run,
            )
    except Exception as err:  # noqa: BLE001 - a bad URL, no server, no driver: one line
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CalibexpError(
            f"cannot open the study storage {redact(url)}: {first}; give a reachable SQLAlchemy "
            "URL (sqlite:///optuna.db, postgresql+psycopg2://user@host:5432/optuna)"
        ) from None


@contextlib.contextmanager
def quiet_experimental() -> Iterator[None]:
    """No ExperimentalWarning for the trial heartbeat and its retry callback: "experimental"
    since Optuna 2.8, they are Optuna's documented way to fail a dead worker's trial, and the
    warning on every study command is nothing a user can act on."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


with quiet_experimental():
    _retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)


def retry_and_close_run(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """A trial whose worker stopped beating: re-enqueue it once with the same parameters, and end
    its MLflow run KILLED (nobody else will) so no run is left RUNNING."""
    _retry(study, trial)
    client = tracking_client()
    experiments = [e.experiment_id for e in client.search_experiments()]
    stale = client.search_runs(
        experiments,
        filter_string=(
            f"tags.`optuna.study` = '{study.study_name}' and "
            f"tags.`optuna.trial_number` = '{trial.number}'"
        ),
    )
    for run in stale:
        if run.info.status == "RUNNING":
            client.set_tag(run.info.run_id, "calibexp.trial_state", "FAIL")
            end_run(client, run.info.run_id, "KILLED", "worker died (no heartbeat); trial retried")


def make_sampler(spec: StudySpec) -> optuna.samplers.BaseSampler:
    return SAMPLERS.build(spec.sampler.name, **hyperparameters(spec.sampler))


def make_pruner(spec: StudySpec, epochs: int) -> optuna.pruners.BasePruner:
    return PRUNERS.build(spec.pruner.name, epochs, **hyperparameters(spec.pruner))


def prepare(spec: StudySpec, storage_url: str) -> tuple[optuna.Study, str]:
    """Create or join the study and its MLflow parent run (call once before fanning out
    workers; later calls join)."""
    client = tracking_client()
    base = load_config(spec.base, list(spec.overrides))
    study = optuna.create_study(
        study_name=spec.name,
        storage=open_storage(storage_url, spec.heartbeat_s),
        sampler=make_sampler(spec),
        pruner=make_pruner(spec, base.train.epochs),
        directions=list(spec.directions),
        load_if_exists=True,
    )
    parent = study.user_attrs.get(PARENT_ATTR)
    tags = {
        "calibexp.study": spec.name,
        "calibexp.study_storage": redact(storage_url),
        "calibexp.spec_digest": spec.digest,
        **host_tags(),
    }
    if parent is None:  # the launcher run, else a new one: a tracked run like any other
        run = TrackedRun.for_this_command(
            client,
            lambda: experiment_id_for(client, base.tracking.experiment),
            study_name(spec.name),
            {**tags, RUN_NAME_TAG: study_name(spec.name)},
        )
        run.log_params(spec.described())
        run.log_text(spec.text, "study/spec.yaml")
        run.flush()
        run.release()
        parent = run.run_id
        client.set_tag(parent, DESCRIPTION_TAG, _parent_description(spec))
        with quiet_experimental():  # optuna-dashboard labels the axis with it
            study.set_metric_names(list(spec.metrics))
        study.set_user_attr(PARENT_ATTR, parent)
    else:  # one more worker: its launcher run points at the study's
        mark_launcher(client, parent, f"a worker of study {spec.name}, run {parent}")
        launcher = launcher_run_id()
        if launcher and launcher != parent:
            client.set_tag(launcher, "calibexp.study_worker_of", parent)
    get_run(client, parent)
    return study, parent


def _parent_description(spec: StudySpec) -> str:
    objectives = ", ".join(f"{m} ({d})" for m, d in zip(spec.metrics, spec.directions))
    space = ", ".join(p.key for p in spec.space)
    budget = f"{spec.n_trials} trials" if spec.n_trials else f"{spec.timeout_s:g} s"
    return (
        f"Optuna study {spec.name} ({spec.path}): {objectives} over {space}; "
        f"{spec.sampler.name} sampler, {spec.pruner.name} pruner, {budget}. "
        "Trials are the child runs below; the best is evaluated on test once, at the end."
    )


def suggest(trial: optuna.Trial, space: tuple[Parameter, ...]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for p in space:
        if any(values.get(k, _unset) != v for k, v in p.when.items()):
            continue
        if p.type == "categorical":
            values[p.key] = trial.suggest_categorical(p.key, list(p.choices))
        elif p.type == "int":
            values[p.key] = trial.suggest_int(
                p.key, int(p.low), int(p.high), step=int(p.step or 1), log=p.log
            )
        else:
            values[p.key] = trial.suggest_float(p.key, p.low, p.high, step=p.step, log=p.log)
    return values


_unset = object()


def overrides_for(values: dict[str, Any]) -> list[str]:
    return [override(k, v) for k, v in values.items()]


class Objective:
    """One trial: a child run of ``cfg`` with the sampled values, judged by the spec's metric(s)
    at the last epoch; single-objective trials report every epoch to the pruner."""

    def __init__(self, spec: StudySpec, parent: str) -> None:
        self.spec, self.parent = spec, parent
        self.data_cache: dict[str, Any] = {}  # the dataset is loaded once per worker process

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        from calibexp.run import TrialHooks, run_experiment

        if self.spec.n_trials is not None and older_live(trial) >= self.spec.n_trials:
            trial.study.stop()
            raise SurplusTrial(f"trial {trial.number}: the budget is taken by older trials")
        values = suggest(trial, self.spec.space)
        cfg = load_config(self.spec.base, [*self.spec.overrides, *overrides_for(values)])
        last: dict[str, float] = {}
        metric = self.spec.metrics[0]

        def after_epoch(epoch: int, metrics: dict[str, float]) -> None:
            last.update(metrics)
            if self.spec.multi_objective or metric not in metrics:
                return
            trial.report(metrics[metric], epoch)
            if trial.should_prune():
                raise EarlyStop(
                    f"pruned by the {self.spec.pruner.name} pruner after epoch {epoch + 1}: "
                    f"{metric} {metrics[metric]:.4f}"
                )

        hooks = TrialHooks(
            parent_run_id=self.parent,
            tags={
                "calibexp.study": self.spec.name,
                "optuna.study": self.spec.name,
                "optuna.trial_number": str(trial.number),
            },
            after_epoch=after_epoch,
            data_cache=self.data_cache,
            run_name=trial_name(self.spec.name, trial.number),
        )
        state = "FAIL"
        try:
            run_experiment(cfg, trial=hooks)
            values_out = tuple(last.get(m, math.nan) for m in self.spec.metrics)
            # A diverged trial (NaN objective) is returned as NaN: Optuna records it FAIL and
            # the study goes on.
            state = "FAIL" if any(math.isnan(v) for v in values_out) else "COMPLETE"
        except EarlyStop:
            state = "PRUNED"
            raise optuna.TrialPruned() from None
        finally:
            if hooks.run_id:
                client = tracking_client()
                client.set_tag(hooks.run_id, "calibexp.trial_state", state)
                client.set_tag(
                    hooks.run_id,
                    DESCRIPTION_TAG,
                    trial_headline(trial, state, last, self.spec, values),
                )
                trial.set_user_attr("mlflow_run_id", hooks.run_id)
        return values_out[0] if len(values_out) == 1 else values_out


def trial_headline(
    trial: optuna.Trial,
    state: str,
    last: dict[str, float],
    spec: StudySpec,
    values: dict[str, Any],
) -> str:
    """A trial run's description: its place in the study, its state and objective(s) at the
    last epoch it trained, and the values it was given (trials never see test)."""
    reached = ", ".join(f"{m} {last[m]:.4f}" for m in spec.metrics if m in last) or "no val metric"
    given = ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()
    )
    return (
        f"Trial {trial.number} of Optuna study {spec.name}: {state}; {reached} at its last "
        f"epoch; {given}."
    )


def older_live(trial: optuna.Trial) -> int:
    """Trials older than this one that finished or are still running: a worker that starts a
    trial after the budget is spent by them gives it up, so several workers never overshoot."""
    live = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    trials = trial.study.get_trials(deepcopy=False, states=live)
    return sum(t.number < trial.number for t in trials)


def running(study: optuna.Study) -> bool:
    return bool(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


def waiting(study: optuna.Study) -> bool:
    return bool(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def run_study(spec: StudySpec, storage_url: str | None = None) -> optuna.Study:
    url = storage_url or spec.storage or default_storage()
    study, parent = prepare(spec, url)
    callbacks = []
    if spec.n_trials is not None:
        # the budget is the study's, shared by every worker on the storage
        states = (TrialState.COMPLETE, TrialState.PRUNED)
        callbacks.append(optuna.study.MaxTrialsCallback(spec.n_trials, states=states))
    objective = Objective(spec, parent)
    deadline = None if spec.timeout_s is None else time.monotonic() + spec.timeout_s
    while True:
        left = None if deadline is None else deadline - time.monotonic()
        out_of_time = left is not None and left <= 0
        if failing(study, spec):
            print(f"calibexp: study {spec.name}: stopping, too many failed trials", flush=True)
            break
        if not out_of_time and (budget_left(study, spec) or waiting(study)):
            # A trial that fails (an exception in training) is recorded FAIL, its run FAILED,
            # and the worker goes on with the next one.
            study.optimize(
                objective,
                n_trials=spec.n_trials,
                timeout=left,
                callbacks=callbacks,
                catch=(Exception,),
                gc_after_trial=True,
            )
            continue
        # Trials other workers still run, or whose worker died: wait for them, failing (and
        # retrying) the stale ones, so the study never ends with a RUNNING trial.
        if not running(study):
            if waiting(study) and not out_of_time:
                continue
            break
        time.sleep(spec.heartbeat_s)
        optuna.storages.fail_stale_trials(study)
    summarise(study, spec, parent, url)
    return study


def failing(study: optuna.Study, spec: StudySpec) -> bool:
    """As many failed trials as the budget (or 10 with a time budget): the spec is broken,
    not unlucky; stop instead of failing forever."""
    failed = len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
    return failed >= max(3, spec.n_trials or 10) and not study.best_trials


def budget_left(study: optuna.Study, spec: StudySpec) -> bool:
    """Whether another trial may start: finished and running trials leave room in n_trials (an
    idle worker does not start trials that would only give up)."""
    if spec.n_trials is None:
        return True
    live = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    return len(study.get_trials(deepcopy=False, states=live)) < spec.n_trials


def summarise(study: optuna.Study, spec: StudySpec, parent: str, url: str) -> None:
    """Log the study to its parent run, then evaluate the best trial(s) on test, once."""
    from calibexp.studies.summary import log_summary

    # Of several workers that finish together exactly one summarises: the run registry's atomic
    # claim (an MLflow experiment name, unique in the store) on a key of this study's parent
    # run, which no other study shares. A user attribute would be check-then-set; a marker
    # study would show in optuna-dashboard as a second, empty study.
    client = tracking_client()
    base = load_config(spec.base, list(spec.overrides))
    experiment = get_run(client, parent).info.experiment_id
    if not Registry(client, experiment, base.tracking).claim(f"summary-of-{parent}", 1):
        return  # another worker finished the study and summarises it
    study.set_user_attr(FINAL_ATTR, "started")
    log_summary(client, study, spec, parent)
    from calibexp.reevaluate import reevaluate

    evaluated = {}
    for trial in study.best_trials:
        source = trial.user_attrs["mlflow_run_id"]
        result = reevaluate(source)
        evaluated[trial.number] = result.run_id
        client.set_tag(result.run_id, "calibexp.study", spec.name)
        client.set_tag(result.run_id, "calibexp.best_trial", str(trial.number))
        if len(study.best_trials) == 1:
            for key, value in result.metrics.items():
                client.log_metric(parent, f"best_{key}", value)
    client.set_tag(parent, "calibexp.best_test_runs", json.dumps(evaluated))
    study.set_user_attr(FINAL_ATTR, json.dumps(evaluated))
    end_run(client, parent, "FINISHED")  # the study is over, whichever worker made it
