"""The MLflow project: every entry point's parameters appear in its command, its script exists,
and `train` takes exactly config, overrides, resume and force; the run registry on the default
SQLite store trains a config once, however often `mlflow run` is started."""

from __future__ import annotations

import re

import pytest
import yaml
from mlflow.tracking import MlflowClient

from calibexp.config import flatten, load_config
from tests.support import ROOT, mlflow_run, run_id_from

PROJECT = yaml.safe_load((ROOT / "MLproject").read_text())


@pytest.mark.parametrize("name", sorted(PROJECT["entry_points"]))
def test_parameters_match_command_and_script_exists(name):
    entry = PROJECT["entry_points"][name]
    placeholders = set(re.findall(r"{(\w+)}", entry["command"]))
    assert placeholders == set(entry.get("parameters", {})), name
    module = re.search(r"python -m entrypoints\.(\w+)", entry["command"]).group(1)
    assert module == name and (ROOT / "entrypoints" / f"{name}.py").is_file()


def test_train_parameters():
    params = PROJECT["entry_points"]["train"]["parameters"]
    assert set(params) == {"config", "overrides", "resume", "force"}
    assert params["config"]["default"] == "configs/demo.yaml"
    assert params["overrides"]["default"] == "" and params["resume"]["default"] == ""
    assert params["force"]["default"] == "false"
    assert PROJECT["conda_env"] == "conda.yaml" and (ROOT / "conda.yaml").is_file()


@pytest.mark.slow
def test_override_through_mlflow_run_changes_exactly_the_named_values(tracking_store):
    overrides = "train.epochs=2 optim.lr=0.07 model.width=8 train.progress=false"
    done = mlflow_run(tracking_store, "-P", f"overrides={overrides}")
    assert done.returncode == 0, done.stderr[-3000:]
    run = MlflowClient(tracking_store).get_run(run_id_from(done.stdout))
    default = flatten(load_config(ROOT / "configs/demo.yaml"))
    changed = {k: v for k, v in run.data.params.items() if k in default and default[k] != v}
    assert changed == {
        "train.epochs": "2",
        "optim.lr": "0.07",
        "model.width": "8",
        "train.progress": "False",
    }
    history = MlflowClient(tracking_store).get_metric_history(run.info.run_id, "val/nll")
    assert sorted(m.step for m in history) == [0, 1]


@pytest.mark.slow
def test_train_twice_trains_once_and_force_trains_again(tracking_store):
    client = MlflowClient(tracking_store)
    fast = "-P", "overrides=train.epochs=2 model.width=8 train.progress=false"
    first = mlflow_run(tracking_store, *fast)
    assert first.returncode == 0, first.stderr[-3000:]
    trained = run_id_from(first.stdout)
    second = mlflow_run(tracking_store, *fast)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"already FINISHED as run {trained}: test/acc" in second.stdout
    assert "epoch 1/2" not in second.stdout  # nothing trained
    forced = mlflow_run(tracking_store, *fast, "-P", "force=true")
    assert forced.returncode == 0, forced.stderr[-3000:]
    again = run_id_from(forced.stdout)
    assert again != trained and "epoch 2/2" in forced.stdout

    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    results = [r for r in runs if "calibexp.registry_key" in r.data.tags]
    launchers = [r for r in runs if "calibexp.launcher_of" in r.data.tags]
    assert {r.info.run_id for r in results} == {trained, again}
    assert all(r.info.status == "FINISHED" for r in results)
    assert client.get_run(again).data.tags["calibexp.forced"] == "true"
    assert "calibexp.forced" not in client.get_run(trained).data.tags
    key = client.get_run(trained).data.tags["calibexp.run_key"]
    assert client.get_run(again).data.tags["calibexp.run_key"] == key  # the same config
    # the first and the forced run are the runs `mlflow run` made; the second one's holds
    # nothing and points at the run that has the result
    assert [r.data.tags["calibexp.launcher_of"] for r in launchers] == [trained]
    assert not launchers[0].data.metrics and len(runs) == 3
