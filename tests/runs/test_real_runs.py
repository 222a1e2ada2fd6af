"""Paper configs run end to end with `mlflow run` on tiny files in the real formats: CIFAR-10
with ResNet-50, Tiny-ImageNet with ResNet-50, and a timm backbone; a missing data root stops
before any run is made."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from calibexp.data import DATASETS
from tests.support import ROOT, mlflow_run, run_id_from, subprocess_env
from tests.support.fake_datasets import write_cifar10, write_tiny_imagenet
from tests.support.reference_split import reference_blocks

pytestmark = pytest.mark.slow
ONE_EPOCH = "train.epochs=1 train.batch_size=16 train.progress=false"


def finished_run(uri: str, config: str, overrides: str):
    done = mlflow_run(uri, "-P", f"config={config}", "-P", f"overrides={overrides}")
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(uri)
    run = client.get_run(run_id_from(done.stdout))
    assert run.info.status == "FINISHED"
    return client, run


@pytest.mark.parametrize(
    "config, model",
    [
        ("configs/cifar10/resnet50/ce.yaml", "resnet50"),
        ("configs/cifar10/timm_resnet18/ce.yaml", "timm"),
    ],
)
def test_cifar10_config_on_real_format_files(tracking_store, tmp_path, config, model):
    written = write_cifar10(tmp_path / "data")  # 60 training images, 20 test
    root = tmp_path / "data"
    client, run = finished_run(
        tracking_store, config, f"data.root={root} data.val_size=10 {ONE_EPOCH}"
    )
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    assert (tags["calibexp.dataset"], tags["calibexp.model"]) == ("cifar10", model)
    expected = DATASETS.build("cifar10", root=str(root), val_size=10).split_digest
    assert tags["calibexp.split_digest"] == expected
    assert params["data.root"] == str(root) and params["train.epochs"] == "1"
    assert {"test/acc", "test/ece_15", "test_ts/nll", "ts/temperature"} <= set(metrics)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val/ece_15")] == [0]
    # splits.npz: the references' val (written-out torrvision code) and the labels scored
    files = tmp_path / "artifacts"
    for artifact in ("splits.npz", "logits/val.npz"):
        client.download_artifacts(run.info.run_id, artifact, str(files))
    blocks = reference_blocks(60, 10)
    with np.load(files / "splits.npz") as splits:
        assert sorted(splits.files) == ["test", "train", "val"]
        assert splits["val"].tolist() == sorted(blocks["val"])
        assert splits["train"].tolist() == sorted(blocks["train"])
        assert splits["test"].tolist() == list(range(20))
        val_labels = written["train_labels"][splits["val"]]
    with np.load(files / "val.npz") as logged:
        assert logged["targets"].tolist() == val_labels.tolist()


def test_tiny_imagenet_config_on_real_format_files(tracking_store, tmp_path):
    write_tiny_imagenet(tmp_path / "data")
    client, run = finished_run(
        tracking_store,
        "configs/tiny_imagenet/resnet50/ce.yaml",
        f"data.root={tmp_path / 'data'} data.val_size=3 {ONE_EPOCH}",
    )
    assert run.data.tags["calibexp.dataset"] == "tiny_imagenet"
    assert run.data.params["schedule.milestones"] == "[40, 60]"
    assert "test/acc" in run.data.metrics


def test_missing_root_stops_before_a_run_exists(tracking_store, tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "entrypoints/train.py"),
            "--config",
            str(ROOT / "configs/cifar10/resnet50/ce.yaml"),
            f"data.root={tmp_path / 'nowhere'}",
        ],
        env=subprocess_env(tracking_store),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert (
        "cifar10: " in done.stderr and "cifar-10-batches-py/data_batch_1 not found" in done.stderr
    )
    client = MlflowClient(tracking_store)
    assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []
