"""Tracking pieces: atomic checkpoints, ordered background writes, an unusable store."""

from __future__ import annotations

import time

import pytest
import torch

from calibexp.errors import CalibexpError
from calibexp.tracking.background import OrderedWorker
from calibexp.tracking.checkpoints import load_checkpoint, save_atomic
from calibexp.tracking.run import TrackedRun, experiment_id_for, tracking_client


def test_save_atomic_keeps_the_old_file_when_a_write_dies(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_atomic({"epoch": 1}, path)

    def dies(obj, f, *args, **kwargs):
        with open(f, "wb") as handle:
            handle.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies)
    with pytest.raises(KeyboardInterrupt):
        save_atomic({"epoch": 2}, path)
    assert torch.load(path, weights_only=True) == {"epoch": 1}


def test_worker_keeps_order_and_reraises_failures():
    worker = OrderedWorker()
    seen = []
    for i in range(20):
        worker.submit(lambda i=i: (time.sleep(0.001 * (i % 3)), seen.append(i)))
    worker.flush()
    assert seen == list(range(20))

    def fails():
        raise OSError("disk full")

    worker.submit(fails)
    worker.submit(lambda: seen.append("after"))  # queued behind the failure: never runs
    with pytest.raises(OSError, match="disk full"):
        worker.flush()
    assert seen == list(range(20))
    worker.close()


def test_a_run_whose_last_writes_fail_ends_failed_not_finished(tmp_path):
    client = tracking_client()
    run = TrackedRun.create(client, experiment_id_for(client, "t"), None, {})
    run.upload(tmp_path / "missing.json", "tables/missing.json")  # the copy will fail
    with pytest.raises(CalibexpError, match="cannot write artifact tables/missing.json"):
        run.finish("FINISHED")
    ended = client.get_run(run.run_id)
    assert ended.info.status == "FAILED"
    assert "cannot write artifact" in ended.data.tags["calibexp.end_reason"]


def test_checkpoint_round_trip_and_missing_or_damaged(tmp_path):
    client = tracking_client()
    run = TrackedRun.create(client, experiment_id_for(client, "t"), None, {})
    with pytest.raises(CalibexpError, match="has no checkpoints/last.pt"):
        load_checkpoint(client, run.run_id)
    path = run.stage("checkpoints/last.pt")
    save_atomic({"epoch": 3, "w": torch.arange(4)}, path)
    run.upload(path, "checkpoints/last.pt")
    broken = run.stage("checkpoints/best.pt")
    broken.write_bytes(b"not a checkpoint")
    run.upload(broken, "checkpoints/best.pt")
    run.flush()
    state = load_checkpoint(client, run.run_id)
    assert state["epoch"] == 3 and torch.equal(state["w"], torch.arange(4))
    with pytest.raises(CalibexpError, match="checkpoints/best.pt cannot be read"):
        load_checkpoint(client, run.run_id, "checkpoints/best.pt")
    run.finish("FINISHED")
    assert client.get_run(run.run_id).info.status == "FINISHED"


def test_unusable_store_is_one_clear_error(monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{blocker}/sub/mlflow.db")
    with pytest.raises(CalibexpError, match="cannot use the MLflow tracking store sqlite:///"):
        tracking_client()
