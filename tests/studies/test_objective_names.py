"""A study objective is checked against the metric names its base config logs, before any
trial: ``val/ece_15`` over a base with ``eval.ece_bins: 10`` is refused in one line, and
``val/ece_10`` over that base is tuned on. Samplers and pruners are registries."""

from __future__ import annotations

import subprocess
import sys

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from calibexp.errors import CalibexpError
from calibexp.registry import hyperparameters
from calibexp.studies import load_spec
from calibexp.studies.runner import run_study
from calibexp.studies.samplers import PRUNERS, SAMPLERS
from tests.support import ROOT, subprocess_env

TEN_BINS = ["eval.ece_bins=10", "train.epochs=2", "model.width=8", "train.progress=false"]


def spec_file(tmp_path, metric: str, **changes) -> str:
    raw = {
        "name": "ten-bins",
        "base": "configs/digits/small_cnn/focal.yaml",
        "overrides": TEN_BINS,
        "space": {"loss.gamma": {"type": "float", "low": 0.0, "high": 3.0}},
        "objectives": [{"metric": metric, "direction": "minimize"}],
        "sampler": {"name": "tpe", "seed": 0},
        "pruner": {"name": "none"},
        "n_trials": 2,
        **changes,
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return str(path)


@pytest.mark.slow  # the real entry point, in a subprocess
def test_an_objective_the_base_does_not_log_is_refused_before_any_trial(tracking_store, tmp_path):
    path = spec_file(tmp_path, "val/ece_15")
    with pytest.raises(CalibexpError) as err:
        load_spec(path, root=ROOT)
    message = str(err.value)
    assert "\n" not in message
    assert "objective metric 'val/ece_15'" in message and "eval.ece_bins = 10" in message
    assert "(did you mean 'val/ece_10'?)" in message
    # through the entry point: exit 2, one line, and nothing in the store or the study storage
    done = subprocess.run(
        [
            sys.executable,
            "entrypoints/study.py",
            "--spec",
            path,
            "--storage",
            f"sqlite:///{tmp_path}/optuna.db",
        ],
        cwd=ROOT,
        env=subprocess_env(tracking_store),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().count("\n") == 0
    assert done.stderr.startswith("calibexp: error: study spec")
    client = MlflowClient(tracking_store)
    assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []
    assert not (tmp_path / "optuna.db").exists()


@pytest.mark.slow  # trains two trials
def test_an_objective_with_another_bin_count_works_when_the_base_logs_it(tracking_store, tmp_path):
    spec = load_spec(spec_file(tmp_path, "val/ece_10"), root=ROOT)
    assert spec.metrics == ("val/ece_10",)
    study = run_study(spec, f"sqlite:///{tmp_path}/optuna.db")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    client = MlflowClient(tracking_store)
    for trial in study.trials:  # each trial's value is what its run logged under that name
        history = client.get_metric_history(trial.user_attrs["mlflow_run_id"], "val/ece_10")
        assert [m.step for m in history] == [0, 1]
        assert trial.value == pytest.approx(history[-1].value)
        assert client.get_metric_history(trial.user_attrs["mlflow_run_id"], "val/ece_15") == []


def test_the_refusal_is_one_line_naming_the_bins(tmp_path):
    with pytest.raises(CalibexpError) as err:
        load_spec(spec_file(tmp_path, "val/ece_15"), root=ROOT)
    assert "eval.ece_bins = 10" in str(err.value) and "\n" not in str(err.value)


def test_the_bin_count_cannot_be_tuned(tmp_path):
    space = {"eval.ece_bins": {"type": "categorical", "choices": [10, 15]}}
    with pytest.raises(CalibexpError, match="the bin count is part of the objective's name"):
        load_spec(spec_file(tmp_path, "val/ece_10", space=space), root=ROOT)


@pytest.mark.parametrize("name", SAMPLERS.names())
def test_every_sampler_builds_from_its_defaults(name):
    schema = SAMPLERS.schema(name)()
    sampler = SAMPLERS.build(name, **hyperparameters(schema))
    assert isinstance(sampler, optuna.samplers.BaseSampler)


@pytest.mark.parametrize("name", PRUNERS.names())
def test_every_pruner_builds_from_its_defaults(name):
    schema = PRUNERS.schema(name)()
    pruner = PRUNERS.build(name, 10, **hyperparameters(schema))
    assert isinstance(pruner, optuna.pruners.BasePruner)


def test_hyperband_runs_up_to_the_configs_epochs():
    pruner = PRUNERS.build("hyperband", 7, min_resource=1, reduction_factor=3)
    assert pruner._max_resource == 7


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"sampler": {"name": "tpe", "seeds": 1}}, "unknown config key 'sampler.seeds'"),
        ({"sampler": {"name": "grid"}}, "sampler.name: unknown sampler 'grid'"),
        ({"pruner": {"name": "medain"}}, "(did you mean 'median'?)"),
        (
            {"pruner": {"name": "median", "n_warmup_steps": "two"}},
            "config key 'pruner.n_warmup_steps': got 'two'",
        ),
    ],
)
def test_sampler_and_pruner_settings_are_checked_against_the_registry(tmp_path, changes, message):
    with pytest.raises(CalibexpError) as err:
        load_spec(spec_file(tmp_path, "val/ece_10", **changes), root=ROOT)
    assert message in str(err.value) and "\n" not in str(err.value)
