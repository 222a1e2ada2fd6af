"""A run killed (SIGINT, SIGKILL) after some epoch and resumed ends FINISHED with every epoch's
metrics exactly once, and with the same weights and metrics as an uninterrupted run."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from calibexp.errors import CalibexpError
from calibexp.tracking.checkpoints import load_checkpoint
from tests.support import ROOT, mlflow_run, run_id_from, subprocess_env, train_until

pytestmark = pytest.mark.slow
EPOCHS = 6
OVERRIDES = [
    "model.width=16",
    f"train.epochs={EPOCHS}",
    "train.progress=false",
    "tracking.flush_every_s=0",
    "tracking.checkpoint_every_s=0",
    "schedule.milestones=[3]",
    "eval.diagram_budget=null",  # every epoch's frame, so the image series can be compared
]
PER_EPOCH = ["train/loss", "train/acc", "val/acc", "val/nll", "val/ece_15", "val/brier", "lr"]


def train_cli(uri: str, *args: str) -> list[str]:
    return [sys.executable, str(ROOT / "entrypoints/train.py"), *args]


def start_and_kill_after(uri: str, epoch: int, sig: int) -> str:
    """Start a run, wait until it reports ``epoch`` done, send ``sig``; returns the run id."""
    args = ["--config", str(ROOT / "configs/demo.yaml"), *OVERRIDES]
    proc, shown = train_until(uri, args, f"epoch {epoch}/{EPOCHS}")
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    lines = [shown, out]
    assert proc.returncode == (130 if sig == signal.SIGINT else -signal.SIGKILL), err[-2000:]
    if sig == signal.SIGINT:
        assert "Traceback" not in err and "interrupted" in err
    return run_id_from("".join(lines))


def histories(client: MlflowClient, run_id: str) -> dict[str, list[tuple[int, float]]]:
    return {
        key: sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
        for key in PER_EPOCH
    }


def image_steps(client: MlflowClient, run_id: str) -> list[int]:
    names = [Path(a.path).name for a in client.list_artifacts(run_id, "images")]
    return sorted(int(n.split("+step+")[1].split("+")[0]) for n in names if n.endswith(".png"))


def val_tables(client: MlflowClient, run_id: str) -> dict[str, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(client.download_artifacts(run_id, "tables/reliability_val", tmp))
        return {p.name: json.loads(p.read_text()) for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, store_template):
    """An uninterrupted run of the same config and seed."""
    import shutil

    folder = tmp_path_factory.mktemp("reference")
    shutil.copy(store_template, folder / "mlflow.db")
    uri = f"sqlite:///{folder}/mlflow.db"
    done = subprocess.run(
        train_cli(uri, "--config", str(ROOT / "configs/demo.yaml"), *OVERRIDES),
        env=subprocess_env(uri),
        capture_output=True,
        text=True,
        cwd=folder,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    client = MlflowClient(uri)
    run_id = run_id_from(done.stdout)
    return client, run_id, histories(client, run_id), load_checkpoint(client, run_id)["model"]


@pytest.mark.parametrize("sig, how", [(signal.SIGINT, "python"), (signal.SIGKILL, "mlflow run")])
def test_kill_then_resume_matches_an_uninterrupted_run(tracking_store, reference, sig, how):
    ref_client, ref_id, ref_histories, ref_weights = reference
    client = MlflowClient(tracking_store)
    run_id = start_and_kill_after(tracking_store, 3, sig)

    killed = client.get_run(run_id)
    if sig == signal.SIGINT:
        assert killed.info.status == "KILLED"
        assert "interrupted" in killed.data.tags["calibexp.end_reason"]
    else:
        assert killed.info.status == "RUNNING"  # nobody could mark it: resume must detect that
    # SIGINT drains the write queue, so the checkpoint of the last finished epoch is there;
    # SIGKILL may cut it, leaving an earlier one or (when it lands before the first upload
    # left the queue) none: the resume then trains from the start. Each way the resume says
    # where it starts, and ends equal to the uninterrupted run.
    try:
        saved = load_checkpoint(client, run_id)["epoch"]
    except CalibexpError:
        saved = None
    if sig == signal.SIGINT:
        assert saved is not None and saved >= 2
    starts = "from its start" if saved is None else f"after epoch {saved + 1}"

    if how == "python":
        done = subprocess.run(
            train_cli(tracking_store, "--resume", run_id),
            env=subprocess_env(tracking_store),
            capture_output=True,
            text=True,
        )
    else:
        done = mlflow_run(tracking_store, "-P", f"resume={run_id}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"resuming MLflow run {run_id} {starts}" in done.stdout

    resumed = client.get_run(run_id)
    assert resumed.info.status == "FINISHED"
    got = histories(client, run_id)
    for key in PER_EPOCH:
        assert [s for s, _ in got[key]] == list(range(EPOCHS)), key  # each epoch exactly once
        assert got[key] == ref_histories[key], key  # and the values of an uninterrupted run
    weights = load_checkpoint(client, run_id)["model"]
    for name, tensor in ref_weights.items():
        assert torch.equal(weights[name], tensor), name
    # the val diagram of every epoch exactly once, with the uninterrupted run's data
    assert image_steps(client, run_id) == list(range(EPOCHS))
    assert val_tables(client, run_id) == val_tables(ref_client, ref_id)
    names = [a.path for a in client.list_artifacts(run_id, "plots")]
    assert "plots/reliability_val_evolution.png" in names
    ref_final = ref_client.get_run(ref_id).data.metrics
    for key in ("test/acc", "test/nll", "test_ts/nll", "ts/temperature", "ts_grid/temperature"):
        assert resumed.data.metrics[key] == ref_final[key], key
    if how == "mlflow run":  # the launcher run mlflow made points at the resumed one
        experiments = [e.experiment_id for e in client.search_experiments()]
        launchers = [
            r
            for r in client.search_runs(experiments)
            if r.data.tags.get("calibexp.launcher_of") == run_id
        ]
        assert len(launchers) == 1
