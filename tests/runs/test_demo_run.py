"""The demo, exactly as the README runs it (`mlflow run . -e train --env-manager local`, no -P),
yields one FINISHED run holding everything the run contract promises, readable through
``MlflowClient``."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from calibexp.config import config_from_dict, flatten, load_config, run_key
from calibexp.metrics import CALIBRATORS, fit_temperature, metric_suite
from calibexp.metrics.suite import suite_keys
from calibexp.plots import prepare_reliability
from calibexp.plots.reliability import DPI, figure_size
from tests.support import ROOT, mlflow_run, png_size, run_id_from

pytestmark = pytest.mark.slow
DEMO = load_config(ROOT / "configs/demo.yaml")
EPOCHS = DEMO.train.epochs
SUITE = [key.removeprefix("val/") for key in suite_keys("val", 15)]
PER_EPOCH = ["train/loss", "train/acc", "lr"] + [f"val/{name}" for name in SUITE]


@pytest.fixture(scope="module")
def demo(tmp_path_factory, store_template):
    folder = tmp_path_factory.mktemp("demo-store")
    shutil.copy(store_template, folder / "mlflow.db")
    uri = f"sqlite:///{folder}/mlflow.db"
    done = mlflow_run(uri)
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(uri)
    run = client.get_run(run_id_from(done.stdout))
    downloads = folder / "downloads"
    client.download_artifacts(run.info.run_id, "", str(downloads))
    return client, run, downloads, done


def test_one_finished_run_in_the_launched_run(demo):
    client, run, _, done = demo
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.project.entryPoint"] == "train"  # logged into mlflow run's run
    runs = client.search_runs([run.info.experiment_id])
    assert [r.info.run_id for r in runs] == [run.info.run_id]
    assert "Traceback" not in done.stderr


def test_params_are_the_flattened_config(demo):
    _, run, _, _ = demo
    params = run.data.params
    for key, value in flatten(DEMO).items():
        assert params[key] == value, key
    # mlflow run's own parameters, with their defaults (it records an empty string shell-quoted)
    assert params["config"] == "configs/demo.yaml" and params["overrides"] in ("", "''")


def test_tags(demo):
    _, run, _, _ = demo
    tags = run.data.tags
    assert tags["calibexp.run_key"] == run_key(DEMO)
    assert tags["calibexp.dataset"] == "digits"
    assert tags["calibexp.model"] == "small_cnn"
    assert tags["calibexp.loss"] == "ce"
    assert tags["calibexp.seed"] == "0"
    from calibexp.data import DATASETS

    assert tags["calibexp.split_digest"] == DATASETS.build("digits").split_digest
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if commit.returncode == 0:  # a git checkout: mlflow run records the commit it ran
        assert tags["mlflow.source.git.commit"] == commit.stdout.strip()


def test_splits_artifact_holds_each_splits_positions(demo):
    """splits.npz names which digits each split holds: disjoint, covering the 1,797 images,
    with the digest the run is tagged with, and the val/test labels the run's logits were
    scored against."""
    from sklearn.datasets import load_digits

    from calibexp.data.bundle import digest_indices

    _, run, files, _ = demo
    with np.load(files / "splits.npz") as stored:
        splits = {name: stored[name] for name in stored.files}
    assert sorted(splits) == ["test", "train", "val"]
    assert [len(splits[s]) for s in ("train", "val", "test")] == [897, 450, 450]
    assert sorted(np.concatenate(list(splits.values())).tolist()) == list(range(1797))
    digest = digest_indices(splits["train"], splits["val"], splits["test"])
    assert run.data.tags["calibexp.split_digest"] == digest
    labels = load_digits().target
    for split in ("val", "test"):
        with np.load(files / f"logits/{split}.npz") as logged:
            assert labels[splits[split]].tolist() == logged["targets"].tolist(), split


def test_one_metric_value_per_epoch(demo):
    client, run, _, _ = demo
    for key in PER_EPOCH:
        history = client.get_metric_history(run.info.run_id, key)
        assert sorted(m.step for m in history) == list(range(EPOCHS)), key
    lrs = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "lr")}
    lr0 = DEMO.optim.lr
    for epoch, lr in lrs.items():
        drops = sum(epoch >= m for m in DEMO.schedule.milestones)
        assert lr == pytest.approx(lr0 * DEMO.schedule.gamma**drops), epoch


def test_config_artifact_reproduces_the_config(demo):
    _, _, files, _ = demo
    logged = config_from_dict(yaml.safe_load((files / "config.yaml").read_text()))
    assert logged == DEMO
    assert load_config(files / "config.yaml") == DEMO  # re-running that file is the same run


def test_checkpoints_load_with_weights_only(demo):
    client, run, files, _ = demo
    last = torch.load(files / "checkpoints/last.pt", weights_only=True)
    best = torch.load(files / "checkpoints/best.pt", weights_only=True)
    assert last["epoch"] == EPOCHS - 1
    assert {"model", "optimizer", "scheduler", "rng", "config", "best"} <= set(last)
    val_nll = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "val/nll")}
    best_epoch = min(val_nll, key=lambda e: (val_nll[e], e))
    assert best["epoch"] == best_epoch == last["best"]["epoch"]
    assert best["metrics"]["val/nll"] == pytest.approx(val_nll[best_epoch])


def test_test_metrics_before_and_after_each_calibrator(demo):
    _, run, files, _ = demo
    metrics = run.data.metrics
    val = np.load(files / "logits/val.npz")
    test = np.load(files / "logits/test.npz")
    assert val["logits"].shape == (450, 10) and test["logits"].shape == (450, 10)
    assert val["logits"].dtype == np.float32
    logits, targets = torch.from_numpy(test["logits"]), torch.from_numpy(test["targets"])
    val_logits, val_targets = torch.from_numpy(val["logits"]), torch.from_numpy(val["targets"])
    temperature = fit_temperature(val_logits, val_targets)
    grid_temperature = CALIBRATORS.build("temperature_grid_ece", val_logits, val_targets)
    assert metrics["ts/temperature"] == pytest.approx(temperature, rel=1e-6)
    assert metrics["ts_grid/temperature"] == grid_temperature
    before = metric_suite(logits, targets)
    for split, t in (("test", 1.0), ("test_ts", temperature), ("test_ts_grid", grid_temperature)):
        expected = metric_suite(logits / t, targets) if t != 1.0 else before
        for name in SUITE:
            got = metrics[f"{split}/{name}"]
            assert got == pytest.approx(expected[name], rel=1e-5, abs=1e-7), (split, name)
    # temperature scaling never changes the arg-max
    assert metrics["test_ts/acc"] == metrics["test_ts_grid/acc"] == metrics["test/acc"]


def test_val_suite_of_the_last_epoch_recomputes_from_the_logged_logits(demo):
    client, run, files, _ = demo
    val = np.load(files / "logits/val.npz")
    expected = metric_suite(torch.from_numpy(val["logits"]), torch.from_numpy(val["targets"]))
    for name in SUITE:
        history = client.get_metric_history(run.info.run_id, f"val/{name}")
        last = next(m.value for m in history if m.step == EPOCHS - 1)
        assert last == pytest.approx(expected[name], rel=1e-5, abs=1e-7), name


def test_reliability_diagrams_at_the_end(demo):
    _, _, files, _ = demo

    def pixels(n_panels: int, suptitle: bool = False) -> tuple[int, int]:
        width, height = figure_size(n_panels, suptitle)
        return int(width * DPI + 1e-6), int(height * DPI + 1e-6)  # as Agg truncates

    for split in ("test", "test_ts", "test_ts_grid"):
        assert png_size(files / f"plots/reliability_{split}.png") == pixels(1)
        table = json.loads((files / f"tables/reliability_{split}.json").read_text())
        assert sum(table["counts"]) == 450 and len(table["edges"]) == 16
        assert len(table["smooth"]["mesh"]) == 200
    # before, after temperature, after the ECE grid: a grid two across (2 x 2, one cell empty)
    assert png_size(files / "plots/reliability_test_before_after.png") == pixels(3)
    # the evolution: 5 epochs of the 20, first and last among them, in 3 rows of 2
    assert png_size(files / "plots/reliability_val_evolution.png") == pixels(5, suptitle=True)


def test_val_diagram_per_epoch_as_an_image_series(demo):
    client, run, files, _ = demo
    names = [Path(a.path).name for a in client.list_artifacts(run.info.run_id, "images")]
    pngs = [n for n in names if n.endswith(".png")]
    steps = sorted(int(n.split("+step+")[1].split("+")[0]) for n in pngs)
    # Within eval.diagram_budget (2% of training time): on these short epochs a sample of the
    # steps, always the first and the last, each once (tests/runs/test_eval_schedule.py)
    assert steps[0] == 0 and steps[-1] == EPOCHS - 1
    assert len(set(steps)) == len(steps) and set(steps) <= set(range(EPOCHS))
    assert all(n.startswith("reliability~val+step+") for n in pngs)
    assert len([n for n in names if n.endswith(".webp")]) == len(pngs)  # the UI's thumbnails
    assert run.data.tags["mlflow.loggedImages"] == "True"
    width, height = figure_size(1)
    assert png_size(files / "images" / pngs[0]) == (int(width * DPI), int(height * DPI))
    tables = sorted(p.name for p in (files / "tables/reliability_val").iterdir())
    assert tables == [f"epoch_{e:04d}.json" for e in range(EPOCHS)]
    # the last epoch's table is the diagram of the logged final val logits
    val = np.load(files / "logits/val.npz")
    expected = prepare_reliability(
        torch.from_numpy(val["logits"]), torch.from_numpy(val["targets"])
    )
    last = json.loads((files / f"tables/reliability_val/epoch_{EPOCHS - 1:04d}.json").read_text())
    assert last["counts"] == expected.counts
    assert last["ece"] == pytest.approx(expected.ece, abs=1e-9)
    assert last["smece"] == pytest.approx(expected.smece, abs=1e-9)
