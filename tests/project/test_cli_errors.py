"""Bad input: one clear line, a non-zero exit, no traceback, and no run left RUNNING."""

from __future__ import annotations

import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from entrypoints import evaluate as evaluate_entry
from entrypoints import train as train_entry
from tests.support import ROOT, subprocess_env

DEMO = str(ROOT / "configs/demo.yaml")


def call(entry, monkeypatch, capsys, *argv: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["prog", *argv])
    with pytest.raises(SystemExit) as done:
        entry.main()
    err = capsys.readouterr().err
    return done.value.code, err


def only_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("calibexp: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def all_runs(client: MlflowClient):
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--config", "nope.yaml"], "config file not found"),
        (
            ["--config", DEMO, "optim.lrr=0.1"],
            "unknown config key 'optim.lrr' (did you mean 'lr'?)",
        ),
        (
            ["--config", DEMO, "--overrides", "train.epochs=two"],
            "config key 'train.epochs': got 'two' (str), expected int",
        ),
        (["--config", DEMO, "data.val_size=5000"], "data.val_size=5000"),
        (["--resume", "f" * 32], "no MLflow run with id 'ffffffffffffffffffffffffffffffff'"),
    ],
)
def test_train_bad_input_creates_no_run(argv, message, monkeypatch, capsys, tracking_store):
    code, err = call(train_entry, monkeypatch, capsys, *argv)
    assert code == 2
    assert message in only_error_line(err)
    assert all_runs(MlflowClient(tracking_store)) == []


def test_evaluate_bad_run_ids(monkeypatch, capsys, tracking_store):
    client = MlflowClient(tracking_store)
    code, err = call(evaluate_entry, monkeypatch, capsys, "--run-id", "a" * 32)
    assert code == 2 and "no MLflow run with id" in only_error_line(err)
    bare = client.create_run(client.create_experiment("other")).info.run_id
    code, err = call(evaluate_entry, monkeypatch, capsys, "--run-id", bare)
    assert code == 2 and "has no config.yaml" in only_error_line(err)
    code, err = call(train_entry, monkeypatch, capsys, "--resume", bare)
    assert code == 2 and "has no config.yaml" in only_error_line(err)


def test_resume_takes_only_machine_overrides(monkeypatch, capsys, tracking_store):
    tiny = ["--config", DEMO, "train.epochs=1", "model.width=4", "train.progress=false"]
    assert call(train_entry, monkeypatch, capsys, *tiny)[0] == 0
    (run,) = all_runs(MlflowClient(tracking_store))
    code, err = call(train_entry, monkeypatch, capsys, "--resume", run.info.run_id, "optim.lr=1")
    assert code == 2 and "overrides may only set this machine's keys" in only_error_line(err)
    assert "optim.lr=1" in only_error_line(err)
    # a machine key is accepted; the run is FINISHED, which is what stops this resume
    code, err = call(train_entry, monkeypatch, capsys, "--resume", run.info.run_id, "device=cpu")
    assert code == 2 and "already FINISHED; nothing to resume" in only_error_line(err)


def test_unwritable_artifact_store_fails_the_run_with_its_reason(
    monkeypatch, capsys, tracking_store, tmp_path
):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    client = MlflowClient(tracking_store)
    client.create_experiment("blocked", artifact_location=str(blocker / "artifacts"))
    code, err = call(
        train_entry,
        monkeypatch,
        capsys,
        "--config",
        DEMO,
        "train.epochs=1",
        "model.width=4",
        "tracking.experiment=blocked",
        "train.progress=false",
    )
    assert code == 2 and "cannot write artifact" in only_error_line(err)
    (run,) = all_runs(client)
    assert run.info.status == "FAILED"
    assert "cannot write artifact" in run.data.tags["calibexp.end_reason"]


@pytest.mark.slow
def test_unusable_tracking_store_from_the_real_cli(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    done = subprocess.run(
        [sys.executable, str(ROOT / "entrypoints/train.py"), "--config", DEMO],
        env=subprocess_env(f"sqlite:///{blocker}/mlflow.db"),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [only_error_line(done.stderr)]
    assert "cannot use the MLflow tracking store" in done.stderr
