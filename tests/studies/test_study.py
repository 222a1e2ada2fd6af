"""Optuna studies: the smoke study through `mlflow run`, every trial a child run; a two-objective
study with a Pareto front; and every bad input stopped before a trial starts."""

from __future__ import annotations

import functools
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from calibexp.errors import CalibexpError
from calibexp.studies import load_spec
from calibexp.studies.runner import run_study
from tests.support import ROOT, mlflow_run

SMOKE = ROOT / "studies/smoke.yaml"


def children(client: MlflowClient, parent: str) -> list:
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, max_results=1000)
    return [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent]


@pytest.mark.slow
def test_smoke_study_through_mlflow_run(tracking_store, tmp_path):
    done = mlflow_run(
        tracking_store,
        "-P",
        "spec=studies/smoke.yaml",
        "-P",
        f"storage=sqlite:///{tmp_path}/optuna.db",
        entry="study",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    spec = load_spec(SMOKE, root=ROOT)
    study = optuna.load_study(study_name=spec.name, storage=f"sqlite:///{tmp_path}/optuna.db")
    client = MlflowClient(tracking_store)
    parent = study.user_attrs["mlflow_parent_run_id"]
    run = client.get_run(parent)
    assert run.data.tags["calibexp.study"] == "smoke"
    assert run.data.tags["calibexp.spec_digest"] == spec.digest
    assert run.data.tags["mlflow.project.entryPoint"] == "study"  # the launched run is the parent
    assert run.info.run_name == "study-smoke"
    # the parent holds the spec: its file, the space, the objective, sampler, pruner, budget
    assert run.data.params["study.objectives"] == "val/nll (minimize)"
    assert run.data.params["space.optim.lr"] == "float [0.005, 0.5] log"
    assert run.data.params["space.loss.gamma"] == "float [0, 5]"
    assert run.data.params["study.pruner"].startswith("median(n_startup_trials=4")
    assert run.data.params["study.n_trials"] == str(spec.n_trials)
    logged_spec = client.download_artifacts(parent, "study/spec.yaml", str(tmp_path))
    assert Path(logged_spec).read_text() == SMOKE.read_text()
    # optuna-dashboard: the objective has its name, and the storage holds one study
    assert study.metric_names == ["val/nll"]
    assert optuna.get_all_study_names(f"sqlite:///{tmp_path}/optuna.db") == ["smoke"]
    trials = [t for t in study.trials if t.state.is_finished()]
    assert len(trials) == spec.n_trials == len({t.number for t in trials})
    runs = {r.data.tags["optuna.trial_number"]: r for r in children(client, parent)}
    assert sorted(map(int, runs)) == [t.number for t in trials]  # one child run per trial
    states = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED"}
    for trial in trials:
        child = runs[str(trial.number)]
        assert child.data.tags["calibexp.trial_state"] == trial.state.name
        assert child.info.run_name == f"smoke-t{trial.number}"
        assert child.info.status == states[trial.state.name]
        for key, value in trial.params.items():
            assert float(child.data.params[key]) == pytest.approx(value), key
        epochs = [m.step for m in client.get_metric_history(child.info.run_id, "val/nll")]
        if trial.state.name == "PRUNED":
            assert "pruned by the median pruner" in child.data.tags["calibexp.end_reason"]
            assert epochs == list(range(len(trial.intermediate_values)))  # pruned, logged
        else:
            assert epochs == list(range(6)) and "test/acc" not in child.data.metrics
            assert trial.value == pytest.approx(
                client.get_run(child.info.run_id).data.metrics["val/nll"]
            )
    assert any(t.state.name == "PRUNED" for t in trials)
    complete = sum(t.state.name == "COMPLETE" for t in trials)
    assert complete < 10  # the smoke study is too small for importances to mean much
    assert run.data.tags["calibexp.importance_caveat"] == (
        f"only {complete} complete trials: importances are unreliable below ~10"
    )
    best = study.best_trial
    assert run.data.tags["calibexp.best_run_id"] == best.user_attrs["mlflow_run_id"]
    assert run.data.metrics["best/val/nll"] == pytest.approx(best.value)
    # test is evaluated once, after the search, on the best trial only
    evaluated = [r for r in children(client, best.user_attrs["mlflow_run_id"])]
    assert len(evaluated) == 1 and "test/acc" in evaluated[0].data.metrics
    assert run.data.metrics["best_test/acc"] == evaluated[0].data.metrics["test/acc"]
    artifacts = {a.path for a in client.list_artifacts(parent, "plots")}
    artifacts |= {a.path for a in client.list_artifacts(parent, "study")}
    assert {
        "plots/optimization_history.png",
        "plots/param_importances.png",
        "study/trials.csv",
        "study/trials.json",
        "study/best_trials.json",
    } <= artifacts


@pytest.mark.slow
def test_two_objectives_give_a_pareto_front_and_no_pruning(tracking_store, tmp_path, monkeypatch):
    from calibexp.data import DATASETS

    loads = []
    digits = DATASETS.get("digits")

    @functools.wraps(digits)  # the same signature: the config schema is made from it
    def counted(**kwargs):
        loads.append(1)
        return digits(**kwargs)

    monkeypatch.setitem(DATASETS._builders, "digits", counted)
    spec = load_spec(ROOT / "studies/smoke_pareto.yaml", root=ROOT)
    study = run_study(spec)  # default storage: optuna.db beside the SQLite MLflow store
    assert (tmp_path / "optuna.db").is_file()
    # the trials share one load of the data; each final test evaluation makes its own
    assert len(loads) == 1 + len(study.best_trials) < 1 + spec.n_trials
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * spec.n_trials
    client = MlflowClient(tracking_store)
    parent = study.user_attrs["mlflow_parent_run_id"]
    assert client.get_run(parent).info.status == "FINISHED"
    assert "plots/pareto_front.png" in {a.path for a in client.list_artifacts(parent, "plots")}
    front = {t.number for t in study.best_trials}
    for trial in study.trials:  # nothing on the front is dominated
        if trial.number in front:
            assert not any(
                o.values[0] >= trial.values[0]
                and o.values[1] <= trial.values[1]
                and o.values != trial.values
                for o in study.trials
            )
    assert len(children(client, parent)) == spec.n_trials


def spec_with(tmp_path: Path, **changes) -> Path:
    raw = yaml.safe_load(SMOKE.read_text())
    for key, value in changes.items():
        raw[key] = value
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))  # space order matters (when:)
    return path


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            {"space": {"loss.gamm": {"type": "float", "low": 0, "high": 1}}},
            "space.loss.gamm: unknown config key 'loss.gamm' (did you mean 'gamma'?)",
        ),
        (
            {"space": {"loss.gamma": {"type": "float", "low": 2, "high": 1}}},
            "space.loss.gamma range [2, 1] is empty or inverted",
        ),
        (
            {"space": {"loss.gamma": {"type": "float", "low": 1, "high": 1}}},
            "space.loss.gamma range [1, 1] is empty or inverted",
        ),
        (
            {"space": {"optim.lr": {"type": "float", "low": 0, "high": 1, "log": True}}},
            "space.optim.lr is log-scaled, so low must be > 0",
        ),
        ({"space": {}}, "'space' is empty"),
        (
            {"objectives": [{"metric": "val/ece", "direction": "minimize"}]},
            "objective metric 'val/ece' is not logged by the base config's runs",
        ),
        (
            {"objectives": [{"metric": "val/acc"}, {"metric": "val/ece_15"}]},
            "a two-objective study cannot prune",
        ),
        ({"pruner": {"name": "medain"}}, "pruner.name: unknown pruner 'medain'"),
        ({"n_trials": None}, "give a budget: n_trials and/or timeout_s"),
        ({"base": "configs/nope.yaml"}, "base: config file not found"),
    ],
)
def test_bad_specs_fail_before_any_trial(tmp_path, changes, message):
    with pytest.raises(CalibexpError) as err:
        load_spec(spec_with(tmp_path, **changes), root=ROOT)
    assert message in str(err.value)


def test_unreachable_storage_is_one_line_before_any_trial(tracking_store, tmp_path):
    spec = load_spec(SMOKE, root=ROOT)
    for url, fragment in (
        ("postgresql+psycopg2://calibexp@127.0.0.1:1/optuna", "cannot open the study storage"),
        (f"sqlite:///{tmp_path}/no/such/dir/optuna.db", "cannot open the study storage"),
    ):
        with pytest.raises(CalibexpError, match=fragment) as err:
            run_study(spec, url)
        assert "\n" not in str(err.value)
    client = MlflowClient(tracking_store)
    assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []


SPECS = sorted((ROOT / "studies").glob("*.yaml"))
STUDY_SPECS = [p for p in SPECS if not p.stem.startswith(("sweep_", "report_"))]


@pytest.mark.parametrize("path", STUDY_SPECS, ids=lambda p: p.name)
def test_every_shipped_spec_is_valid(path):
    spec = load_spec(path, root=ROOT)
    assert spec.space and spec.metrics and (spec.n_trials or spec.timeout_s)


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            {
                "space": {
                    "model.width": {"type": "int", "low": 8, "high": 64, "log": True, "step": 8}
                }
            },
            "space.model.width: a log-scaled range cannot have a step",
        ),
        (
            {"space": {"loss.gamma": {"type": "float", "low": 0, "high": 1, "step": 0}}},
            "space.loss.gamma step 0, expected a positive number",
        ),
        (
            {"space": {"optim.lr": {"type": "float", "low": -1.0, "high": 0.1}}},
            "space.optim.lr: config key 'optim.lr': got -1.0",  # the low end is checked
        ),
        (
            {"space": {"train.precision": {"type": "categorical", "choices": ["fp32", "fp16"]}}},
            "train.precision': got 'fp16'",  # every choice is checked, not just the first
        ),
        (
            {
                "space": {
                    "loss.gamma": {
                        "type": "float",
                        "low": 0,
                        "high": 1,
                        "when": {"loss.name": "focal"},
                    }
                }
            },
            "when {loss.name: 'focal'}: expected an earlier categorical parameter",
        ),
        ({"timeout_s": -5}, "timeout_s -5, expected a number of seconds > 0"),
        ({"heartbeat_s": "30s"}, "heartbeat_s '30s', expected a number of seconds > 0"),
        ({"objectives": ["val/nll"]}, "objectives entry 'val/nll', expected {metric"),
        ({"space": ["loss.gamma"]}, "'space' must map config keys to ranges"),
    ],
)
def test_more_bad_specs_fail_at_load(tmp_path, changes, message):
    with pytest.raises(CalibexpError) as err:
        load_spec(spec_with(tmp_path, **changes), root=ROOT)
    assert message in str(err.value)


def tiny_study(tmp_path: Path, space: dict, n_trials: int, epochs: int):
    """The smoke spec with ``space``, unpruned, on 8-wide CNNs for ``epochs`` epochs."""
    overrides = [
        f"train.epochs={epochs}",
        "model.width=8",
        "train.progress=false",
        "eval.diagram_every=0",
    ]
    path = spec_with(
        tmp_path, space=space, n_trials=n_trials, pruner={"name": "none"}, overrides=overrides
    )
    return load_spec(path, root=ROOT)


@pytest.mark.slow
def test_conditional_parameter_is_sampled_only_under_its_condition(tracking_store, tmp_path):
    space = {
        "loss.name": {"type": "categorical", "choices": ["focal", "ce"]},
        "loss.gamma": {"type": "float", "low": 0.0, "high": 5.0, "when": {"loss.name": "focal"}},
    }
    spec = tiny_study(tmp_path, space, n_trials=6, epochs=1)
    study = run_study(spec, f"sqlite:///{tmp_path}/optuna.db")
    for trial in study.trials:
        assert ("loss.gamma" in trial.params) == (trial.params["loss.name"] == "focal")
    assert {t.params["loss.name"] for t in study.trials} == {"focal", "ce"}


def test_diverging_trials_fail_and_the_worker_goes_on(tracking_store, tmp_path):
    space = {"optim.lr": {"type": "categorical", "choices": [1.0e8]}}
    spec = tiny_study(tmp_path, space, n_trials=2, epochs=2)
    study = run_study(spec, f"sqlite:///{tmp_path}/optuna.db")  # returns: no crash
    assert study.trials and all(t.state.name == "FAIL" for t in study.trials)
    client = MlflowClient(tracking_store)
    parent = study.user_attrs["mlflow_parent_run_id"]
    runs = children(client, parent)
    assert runs and all(r.data.tags["calibexp.trial_state"] == "FAIL" for r in runs)
    assert client.get_run(parent).info.status == "FINISHED"


@pytest.mark.slow
def test_a_time_budget_ends_and_summarises(tracking_store, tmp_path):
    spec = load_spec(spec_with(tmp_path, n_trials=500, timeout_s=4), root=ROOT)
    study = run_study(spec, f"sqlite:///{tmp_path}/optuna.db")
    assert 1 <= len(study.trials) < 500
    assert study.user_attrs["final_evaluation"] != "started"  # the summary ran to its end
    parent = study.user_attrs["mlflow_parent_run_id"]
    assert MlflowClient(tracking_store).get_run(parent).info.status == "FINISHED"
