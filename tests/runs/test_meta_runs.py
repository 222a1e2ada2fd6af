"""Meta-calibration runs end to end: the digits demo through ``mlflow run`` (its meta/ metrics,
the learned hyper-parameters and their figure), killed and resumed bit-identically, and the
rotated-digits multi-domain demo's per-domain evaluation, in ``train`` and ``evaluate``."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from calibexp.config import load_config
from calibexp.metrics import Predictions, suite_of
from calibexp.reevaluate import reevaluate
from calibexp.run import run_experiment
from calibexp.tracking.checkpoints import load_checkpoint
from tests.support import ROOT, mlflow_run, run_id_from, subprocess_env, train_until

pytestmark = pytest.mark.slow
META_DEMO = ROOT / "configs/digits/small_cnn/meta_calibration.yaml"
ROTATED = ROOT / "configs/demo_rotated_digits.yaml"
EPOCHS = 5
OVERRIDES = [
    "model.width=16",
    f"train.epochs={EPOCHS}",
    "schedule.milestones=[3]",
    "train.progress=false",
    "tracking.flush_every_s=0",
    "tracking.checkpoint_every_s=0",
]
META_KEYS = ["meta/loss", "meta/ce", "meta/dece", "meta/eps_mean", "meta/eps_min", "meta/eps_max"]
PER_EPOCH = [*META_KEYS, "meta/spread_max", "train/loss", "val/acc", "val/ece_15", "lr"]


def learned(client: MlflowClient, run_id: str) -> dict[str, np.ndarray]:
    with tempfile.TemporaryDirectory() as tmp:
        with np.load(client.download_artifacts(run_id, "meta/learned.npz", tmp)) as arrays:
            return dict(arrays)


def histories(client: MlflowClient, run_id: str) -> dict[str, list[tuple[int, float]]]:
    return {
        key: sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
        for key in PER_EPOCH
    }


def test_a_digits_meta_calibration_run_through_mlflow_run(tracking_store):
    done = mlflow_run(
        tracking_store, "-P", f"config={META_DEMO}", "-P", f"overrides={' '.join(OVERRIDES)}"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(tracking_store)
    run = client.get_run(run_id_from(done.stdout))
    assert run.info.status == "FINISHED"
    assert run.data.tags["calibexp.meta"] == "label_smoothing_nonuniform"
    assert run.data.params["meta.name"] == "label_smoothing_nonuniform"
    assert run.info.run_name == "digits-small_cnn-ce+label_smoothing_nonuniform-s0"

    history = histories(client, run.info.run_id)
    for key in META_KEYS:
        assert [s for s, _ in history[key]] == list(range(EPOCHS)), key
        assert all(np.isfinite(v) for _, v in history[key]), key
    for (_, low), (_, mean), (_, high) in zip(
        history["meta/eps_min"], history["meta/eps_mean"], history["meta/eps_max"]
    ):
        assert 0.0 <= low <= mean <= high <= 0.5
    assert history["meta/eps_max"][-1][1] > 0  # ε moved off its start at 0

    # The artifact is the learner's state in the last checkpoint, and the logged summary of it.
    arrays = learned(client, run.info.run_id)
    state = load_checkpoint(client, run.info.run_id)["step"]["learner"]
    np.testing.assert_array_equal(arrays["eps"], state["eps"].numpy())
    np.testing.assert_array_equal(arrays["spread"], state["spread"].numpy())
    assert float(arrays["eps"].mean()) == pytest.approx(history["meta/eps_mean"][-1][1], rel=1e-6)
    off = arrays["spread"] * (1 - np.eye(10))
    np.testing.assert_allclose(
        arrays["spread_rows"], off / (off.sum(1, keepdims=True) + 1e-6), rtol=1e-6
    )
    # meta-val as large as val, out of train: 447 / 450 / 450 / 450
    with tempfile.TemporaryDirectory() as tmp:
        with np.load(client.download_artifacts(run.info.run_id, "splits.npz", tmp)) as splits:
            assert {k: len(v) for k, v in splits.items()} == {
                "train": 447,
                "val": 450,
                "test": 450,
                "meta_val": 450,
            }
    with tempfile.TemporaryDirectory() as tmp:
        png = Path(client.download_artifacts(run.info.run_id, "plots/meta_learned.png", tmp))
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def train_command(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "entrypoints/train.py"), *args]


def test_killed_and_resumed_it_ends_as_an_uninterrupted_run(tracking_store, tmp_path):
    args = ["--config", str(META_DEMO), *OVERRIDES]
    reference = subprocess.run(
        train_command(*args, "tracking.experiment=reference"),
        env=subprocess_env(tracking_store),
        capture_output=True,
        text=True,
    )
    assert reference.returncode == 0, reference.stderr[-2000:]
    client = MlflowClient(tracking_store)
    ref_id = run_id_from(reference.stdout)

    proc, shown = train_until(tracking_store, args, f"epoch 2/{EPOCHS}")
    run_id = run_id_from(shown)
    # Killed once a checkpoint with the meta state is in the store, so the resume restores the
    # learner and its Adam state rather than starting over.
    deadline = time.monotonic() + 60
    while not any(
        a.path == "checkpoints/last.pt" for a in client.list_artifacts(run_id, "checkpoints")
    ):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    saved = load_checkpoint(client, run_id)["epoch"]
    assert saved < EPOCHS - 1

    done = subprocess.run(
        train_command("--resume", run_id),
        env=subprocess_env(tracking_store),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"resuming MLflow run {run_id} after epoch {saved + 1}" in done.stdout
    assert client.get_run(run_id).info.status == "FINISHED"
    got, want = histories(client, run_id), histories(client, ref_id)
    for key in PER_EPOCH:
        assert [s for s, _ in got[key]] == list(range(EPOCHS)), key  # each epoch once
        assert got[key] == want[key], key  # bit-identical values
    ours, theirs = load_checkpoint(client, run_id), load_checkpoint(client, ref_id)
    for name, tensor in theirs["model"].items():
        assert torch.equal(ours["model"][name], tensor), name
    for name, tensor in theirs["step"]["learner"].items():
        assert torch.equal(ours["step"]["learner"][name], tensor), name
    for key, value in learned(client, ref_id).items():
        np.testing.assert_array_equal(learned(client, run_id)[key], value)
    final = client.get_run(run_id).data.metrics
    for key in ("test/acc", "test/ece_15", "test_ts/ece_15", "ts/temperature"):
        assert final[key] == client.get_run(ref_id).data.metrics[key], key


DOMAINS = ["rot0", "rot15", "rot30", "rot45", "rot60", "rot75"]


def test_rotated_digits_logs_every_domain_seen_and_held_out(tracking_store):
    cfg = load_config(ROTATED, [*OVERRIDES[:-2], "train.epochs=3"])
    outcome = run_experiment(cfg)
    client = MlflowClient(tracking_store)
    run = client.get_run(outcome.run_id)
    metrics = run.data.metrics
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "rotated_digits-small_cnn-ce+label_smoothing_vector-s0"
    with tempfile.TemporaryDirectory() as tmp:
        rows = json.loads(
            Path(client.download_artifacts(run.info.run_id, "tables/domains.json", tmp)).read_text()
        )
        with np.load(client.download_artifacts(run.info.run_id, "logits/test.npz", tmp)) as saved:
            logits, targets = torch.from_numpy(saved["logits"]), torch.from_numpy(saved["targets"])
    assert [(r["split"], r["domain"]) for r in rows] == [
        (split, d) for split in ("test", "test_ts", "test_ts_grid") for d in DOMAINS
    ]
    assert all(r["seen"] == (r["domain"] != "rot75") and r["n"] == 450 for r in rows)
    # Test is domain-major, 450 digits a domain: each domain's metrics are its slice's suite.
    for i, domain in enumerate(DOMAINS):
        part = slice(450 * i, 450 * (i + 1))
        suite = suite_of(Predictions(logits[part], targets[part]), bins=15)
        for key in ("acc", "ece_15", "nll"):
            assert metrics[f"test/{domain}/{key}"] == pytest.approx(suite[key], rel=1e-5), key
        scaled = Predictions(logits[part] / metrics["ts/temperature"], targets[part])
        assert metrics[f"test_ts/{domain}/ece_15"] == pytest.approx(
            suite_of(scaled, bins=15)["ece_15"], rel=1e-4, abs=1e-7
        )
    mean_acc = np.mean([metrics[f"test/{d}/acc"] for d in DOMAINS])
    assert mean_acc == pytest.approx(metrics["test/acc"], rel=1e-6)  # equal-sized domains
    # one ε vector per seen domain (rot0 ... rot60), the held-out rot75 has none
    arrays = learned(client, run.info.run_id)
    assert arrays["eps"].shape == (5, 10) and arrays["eps"].any()
    history = client.get_metric_history(run.info.run_id, "meta/eps_mean")
    assert max(history, key=lambda m: m.step).value == pytest.approx(arrays["eps"].mean())

    # evaluate: the same per-domain report, computed again from the checkpoint
    again = reevaluate(run.info.run_id)
    for domain in DOMAINS:
        key = f"test/{domain}/ece_15"
        assert again.metrics[key] == pytest.approx(metrics[key], abs=1e-6)


def test_cifar10_with_corruptions_as_domains_trains_one_vector_per_seen_domain(
    tracking_store, tmp_path
):
    """The CIFAR-10-C domains on tiny files in the real formats: train sees clean and two
    corruptions, test all five; one ε vector per seen domain."""
    from tests.support.fake_datasets import write_cifar10, write_cifar10_c

    clean = write_cifar10(tmp_path)
    write_cifar10_c(tmp_path, ("gaussian_noise", "motion_blur", "fog", "contrast"), per=20)
    np.save(tmp_path / "CIFAR-10-C/labels.npy", np.tile(clean["test_labels"].astype(np.uint8), 5))
    overrides = [
        "data.name=cifar10_domains",
        f"data.root={tmp_path}",
        "data.val_size=10",
        "data.meta_val_size=10",
        "train.epochs=2",
        "train.batch_size=16",
        "model.width=8",
        "train.progress=false",
    ]
    outcome = run_experiment(load_config(ROTATED, overrides))
    client = MlflowClient(tracking_store)
    metrics = client.get_run(outcome.run_id).data.metrics
    names = ["clean", "gaussian_noise", "motion_blur", "fog", "contrast"]
    for name in names:
        assert 0.0 <= metrics[f"test/{name}/acc"] <= 1.0
        assert f"test_ts/{name}/ece_15" in metrics
    with tempfile.TemporaryDirectory() as tmp:
        rows = json.loads(
            Path(client.download_artifacts(outcome.run_id, "tables/domains.json", tmp)).read_text()
        )
    seen = {r["domain"]: r["seen"] for r in rows if r["split"] == "test"}
    assert seen == dict(zip(names, [True, True, True, False, False]))
    assert learned(client, outcome.run_id)["eps"].shape == (3, 10)  # clean and the two seen
