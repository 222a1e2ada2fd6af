"""The MLflow project: every entry point's parameters appear in its command, its script exists,
and `train` takes exactly config, overrides and resume."""

from __future__ import annotations

import re

import pytest
import yaml
from mlflow.tracking import MlflowClient

from calibexp.config import flatten, load_config
from tests.conftest import ROOT, mlflow_run, run_id_from

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
    assert set(params) == {"config", "overrides", "resume"}
    assert params["config"]["default"] == "configs/demo.yaml"
    assert params["overrides"]["default"] == "" and params["resume"]["default"] == ""
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
