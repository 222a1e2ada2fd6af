"""Several study workers on one PostgreSQL (the CI's throwaway cluster): one study, exactly the
budgeted trials, unique trial numbers, one MLflow child run per trial under one parent; a worker
SIGKILLed mid-trial is detected by its missing heartbeat, its trial retried, no run left
RUNNING."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from tests.support import ROOT, subprocess_env
from tests.support.postgres import Cluster

pytestmark = pytest.mark.slow
BUDGET = 9


@pytest.fixture(scope="module")
def postgres():
    cluster = Cluster().start()
    yield cluster
    cluster.stop()


def write_spec(folder, name: str, epochs: int = 3) -> str:
    raw = yaml.safe_load((ROOT / "studies/smoke.yaml").read_text())
    raw.update(name=name, n_trials=BUDGET, heartbeat_s=1, pruner={"name": "none"})
    raw["overrides"] = [o for o in raw["overrides"] if not o.startswith("train.epochs")]
    raw["overrides"].append(f"train.epochs={epochs}")
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def worker(spec: str, storage: str, tracking: str, cwd, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "entrypoints/study.py"),
            "--spec",
            spec,
            "--storage",
            storage,
            *extra,
        ],
        # One torch thread each: 3 workers x torch's default 2 threads on 2 cores spin against
        # each other (and against the store); what the test asserts does not depend on it.
        env={**subprocess_env(tracking), "OMP_NUM_THREADS": "1"},
        cwd=cwd,  # MLflow's default artifact root ./mlruns: shared by the workers here
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def prepare(spec: str, storage: str, tracking: str, cwd) -> None:
    MlflowClient(tracking).search_experiments()  # the MLflow schema, once, before fanning out
    done = worker(spec, storage, tracking, cwd, "--prepare-only")
    out, err = done.communicate(timeout=300)
    assert done.returncode == 0, err[-2000:]


def check_study(name: str, storage: str, tracking: str, retried: int) -> optuna.Study:
    study = optuna.load_study(study_name=name, storage=storage)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    assert len(complete) == BUDGET
    assert len({t.number for t in study.trials}) == len(study.trials)
    assert not study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
    client = MlflowClient(tracking)
    parent = study.user_attrs["mlflow_parent_run_id"]
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, max_results=1000)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent]
    numbers = sorted(int(r.data.tags["optuna.trial_number"]) for r in children)
    assert len(numbers) == len(set(numbers))  # one MLflow run per trial
    assert {t.number for t in complete} <= set(numbers)
    assert all(r.info.status != "RUNNING" for r in runs)
    retries = [t for t in study.trials if "failed_trial" in t.system_attrs]
    assert len(retries) == retried
    # one worker summarised and evaluated the best trial on test, once
    best_run = study.best_trial.user_attrs["mlflow_run_id"]
    evaluations = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == best_run]
    assert len(evaluations) == 1 and "test/acc" in evaluations[0].data.metrics
    return study


def test_three_workers_share_one_study(postgres, tmp_path):
    spec = write_spec(tmp_path, "workers")
    storage, tracking = postgres.url("optuna"), postgres.url("mlflow")
    prepare(spec, storage, tracking, tmp_path)
    workers = [worker(spec, storage, tracking, tmp_path) for _ in range(3)]
    for w in workers:
        out, err = w.communicate(timeout=600)
        assert w.returncode == 0, err[-3000:]
    study = check_study("workers", storage, tracking, retried=0)
    # no trial beyond the budget ran: a worker that raced past the budget gave its trial up
    # before making a run (at most one per other worker), and idle workers started none
    assert all(t.state in (TrialState.COMPLETE, TrialState.FAIL) for t in study.trials)
    assert len(study.trials) - BUDGET <= 2


def test_a_killed_worker_leaves_no_zombie(postgres, tmp_path):
    spec = write_spec(tmp_path, "killed", epochs=15)  # trials of a few seconds: time to kill
    storage, tracking = postgres.url("optuna"), postgres.url("mlflow")
    prepare(spec, storage, tracking, tmp_path)
    doomed = worker(spec, storage, tracking, tmp_path)
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until it is one epoch into a trial, then kill it hard
        study = optuna.load_study(study_name="killed", storage=storage)
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if running and running[0].intermediate_values:  # 14 of its 15 epochs still to go
            break
        time.sleep(0.1)
    doomed.send_signal(signal.SIGKILL)
    doomed.communicate()
    killed = optuna.load_study(study_name="killed", storage=storage).get_trials(
        deepcopy=False, states=(TrialState.RUNNING,)
    )
    assert len(killed) == 1
    workers = [worker(spec, storage, tracking, tmp_path) for _ in range(3)]
    for w in workers:
        out, err = w.communicate(timeout=600)
        assert w.returncode == 0, err[-3000:]
    study = check_study("killed", storage, tracking, retried=1)
    dead = study.trials[killed[0].number]
    assert dead.state == TrialState.FAIL
    retry = next(t for t in study.trials if t.system_attrs.get("failed_trial") == dead.number)
    assert retry.params == dead.params and retry.state == TrialState.COMPLETE
