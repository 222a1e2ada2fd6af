"""Robustness logged into the evaluated run: ``mlflow run . -e ood`` on a finished CIFAR-format
run with tiny SVHN ``.mat`` and CIFAR-10-C ``.npy`` files, and on the digits demo with the sets
that need no download; every metric recomputed from the logits the run logged, read back through
``MlflowClient``. Missing or damaged files: one line, a non-zero exit, the run still FINISHED
with its training results, at the end of training too."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from calibexp.config import load_config
from calibexp.data.embedded_shift import DIGIT_CORRUPTIONS
from calibexp.data.shifted import CORRUPTIONS, SEVERITIES
from calibexp.metrics import Predictions, suite_of
from calibexp.metrics.ood import DETECTION_METRICS, OOD_SCORES, detection_metrics, scores_of
from calibexp.reevaluate import robustness_of_run
from calibexp.run import run_experiment
from tests.support import FAST, ROOT, mlflow_run, subprocess_env
from tests.support.fake_datasets import write_cifar10, write_cifar10_c, write_svhn

pytestmark = pytest.mark.slow

CIFAR_CONFIG = f"""_base_:
  - {ROOT}/configs/_base_/datasets/cifar10.yaml
  - {ROOT}/configs/_base_/models/small_cnn.yaml
  - {ROOT}/configs/_base_/losses/ce.yaml
  - {ROOT}/configs/_base_/schedules/demo_20e.yaml
"""


def artifacts(client: MlflowClient, run_id: str, path: str, into: Path) -> Path:
    return Path(client.download_artifacts(run_id, path, str(into)))


def assert_ood_set_recomputes(client, run_id, name, metrics, into) -> None:
    """Every ood/ and ood_ts/ metric of ``name`` equals the one recomputed from its logits."""
    with np.load(artifacts(client, run_id, f"logits/ood/{name}.npz", into)) as logged:
        temperature = float(logged["temperature"])
        assert temperature == pytest.approx(metrics["ts/temperature"], rel=1e-6)
        for variant, t in (("ood", 1.0), ("ood_ts", temperature)):
            ids = scores_of(torch.from_numpy(logged["id_logits"]) / t, OOD_SCORES.names())
            ood = scores_of(torch.from_numpy(logged["logits"]) / t, OOD_SCORES.names())
            for score in OOD_SCORES.names():
                expected = detection_metrics(ids[score], ood[score])
                for metric in DETECTION_METRICS:
                    key = f"{variant}/{name}/{score}/{metric}"
                    assert metrics[key] == pytest.approx(expected[metric], abs=1e-9), key


def assert_shift_set_recomputes(client, run_id, name, corruptions, metrics, into) -> None:
    """Every shift/ and shift_ts/ metric of ``name``, per pair and aggregated, equals the one
    recomputed from the logged logits."""
    with np.load(artifacts(client, run_id, f"logits/shift/{name}.npz", into)) as logged:
        temperature = float(logged["temperature"])
        clean = torch.from_numpy(logged["id_logits"])
        for variant, t in (("shift", 1.0), ("shift_ts", temperature)):
            per_pair = {}
            for corruption in corruptions:
                for severity in SEVERITIES:
                    z = torch.from_numpy(logged[f"logits_{corruption}_{severity}"]) / t
                    y = torch.from_numpy(logged[f"targets_{corruption}_{severity}"])
                    suite = suite_of(Predictions(z, y))
                    suite["auroc_msp"] = detection_metrics(
                        scores_of(clean / t, ["msp"])["msp"], scores_of(z, ["msp"])["msp"]
                    )["auroc"]
                    per_pair[corruption, severity] = suite
                    for key, value in suite.items():
                        logged_key = f"{variant}/{name}/{corruption}/{severity}/{key}"
                        assert metrics[logged_key] == pytest.approx(value, abs=1e-6), logged_key
            for key in ("acc", "nll", "ece_15", "smece", "auroc_msp"):
                for severity in SEVERITIES:
                    values = [per_pair[c, severity][key] for c in corruptions]
                    mean = metrics[f"{variant}/{name}/mean/{severity}/{key}"]
                    median = metrics[f"{variant}/{name}/median/{severity}/{key}"]
                    assert mean == pytest.approx(np.mean(values), abs=1e-6)
                    assert median == pytest.approx(np.median(values), abs=1e-6)
                every = [suite[key] for suite in per_pair.values()]
                assert metrics[f"{variant}/{name}/mean/all/{key}"] == pytest.approx(np.mean(every))


def test_ood_entry_logs_svhn_and_cifar10_c_into_a_finished_cifar_run(tracking_store, tmp_path):
    root = tmp_path / "data"
    write_cifar10(root)  # 60 training images, 20 test
    svhn = write_svhn(root, n=30)
    write_cifar10_c(root, corruptions=CORRUPTIONS, per=6)
    (tmp_path / "cifar.yaml").write_text(CIFAR_CONFIG)
    cfg = load_config(
        tmp_path / "cifar.yaml",
        [f"data.root={root}", "data.val_size=10", *FAST, "model.width=8", "train.batch_size=16"],
    )
    run_id = run_experiment(cfg).run_id
    client = MlflowClient(tracking_store)
    before = client.get_run(run_id).data.metrics

    done = mlflow_run(
        tracking_store, "-P", f"run_id={run_id}", "-P", "sets=svhn cifar10_c", entry="ood"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    metrics = run.data.metrics
    assert {k: metrics[k] for k in before} == before  # training results untouched
    into = tmp_path / "artifacts"
    assert_ood_set_recomputes(client, run_id, "svhn", metrics, into)
    with np.load(into / "svhn.npz") as logged:
        assert logged["logits"].shape == (30, 10)  # every SVHN test image
        assert logged["targets"].tolist() == [int(v) % 10 for v in svhn["y"].ravel()]
    assert_shift_set_recomputes(client, run_id, "cifar10_c", CORRUPTIONS, metrics, into)
    assert not any("speckle_noise" in k for k in metrics)  # the extra 4 only on request
    # the SA-FCL README's table: MSP AUROC x100, no temperature, severity 5
    table = json.loads(artifacts(client, run_id, "tables/robustness.json", into).read_text())
    assert table["auroc_cifar10_to_svhn"] == pytest.approx(100 * metrics["ood/svhn/msp/auroc"])
    per_corruption = [table[f"auroc_cifar10_to_cifar10_c_s5_{c}"] for c in CORRUPTIONS]
    for c, value in zip(CORRUPTIONS, per_corruption):
        assert value == pytest.approx(100 * metrics[f"shift/cifar10_c/{c}/5/auroc_msp"])
    assert table["auroc_cifar10_to_cifar10_c_s5_mean"] == pytest.approx(np.mean(per_corruption))
    plots = {a.path for a in client.list_artifacts(run_id, "plots")}
    assert {"plots/ood_svhn_scores.png", "plots/shift_cifar10_c.png"} <= plots
    tables = {a.path for a in client.list_artifacts(run_id, "tables")}
    assert {"tables/ood_svhn.json", "tables/shift_cifar10_c.json"} <= tables
    # the launcher run `mlflow run` made points at the run it evaluated
    launchers = client.search_runs(
        [run.info.experiment_id, "0"], f"tags.`calibexp.launcher_of` = '{run_id}'"
    )
    assert len(launchers) == 1


def test_digits_demo_evaluated_with_the_offline_sets(tracking_store, tmp_path):
    cfg = load_config(ROOT / "configs/demo.yaml", FAST)
    run_id = run_experiment(cfg).run_id
    done = mlflow_run(tracking_store, "-P", f"run_id={run_id}", entry="ood")
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(tracking_store)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    into = tmp_path / "artifacts"
    assert_ood_set_recomputes(client, run_id, "image_patches", run.data.metrics, into)
    corruptions = list(DIGIT_CORRUPTIONS)
    assert_shift_set_recomputes(client, run_id, "digits_c", corruptions, run.data.metrics, into)
    # severity 5 is harder than severity 1, on average over the corruptions
    metrics = run.data.metrics
    assert metrics["shift/digits_c/mean/5/acc"] < metrics["shift/digits_c/mean/1/acc"]
    # a later evaluation of one set adds to the SA-FCL table, it does not replace it
    table = json.loads(artifacts(client, run_id, "tables/robustness.json", into).read_text())
    client.set_tag(run_id, "calibexp.robustness_error", "digits_c: as if it had failed")
    robustness_of_run(run_id, ["image_patches"])
    again = json.loads(artifacts(client, run_id, "tables/robustness.json", into).read_text())
    assert again.keys() == table.keys() and "auroc_digits_to_digits_c_s5_mean" in again
    assert again["auroc_digits_to_image_patches"] == pytest.approx(
        table["auroc_digits_to_image_patches"]
    )  # the same weights, the same patches
    after = client.get_run(run_id)
    assert after.info.status == "FINISHED"
    # every set of the run's eval.ood (none) evaluated again without error: the tag is gone
    assert "calibexp.robustness_error" not in after.data.tags


def test_missing_or_damaged_files_fail_the_evaluation_not_the_run(tracking_store, tmp_path):
    root = tmp_path / "data"  # the sets' default root, relative to the working directory
    root.mkdir()
    cfg = load_config(
        ROOT / "configs/demo.yaml",
        [*FAST, "eval.ood=[image_patches, svhn]", "eval.test_checkpoint=best"],
    )
    outcome = run_experiment(cfg)
    client = MlflowClient(tracking_store)
    run = client.get_run(outcome.run_id)
    # at the end of training: the set with no file is reported and tagged, the run FINISHED
    assert run.info.status == "FINISHED"
    assert "test_32x32.mat not found" in run.data.tags["calibexp.robustness_error"]
    assert "ood/image_patches/msp/auroc" in run.data.metrics
    assert not any(k.startswith("ood/svhn/") for k in run.data.metrics)
    # logged at the epoch of the weights evaluated: best.pt's, the epoch of the lowest val NLL
    nll = client.get_metric_history(outcome.run_id, "val/nll")
    best_epoch = min(nll, key=lambda m: (m.value, m.step)).step
    (point,) = client.get_metric_history(outcome.run_id, "ood/image_patches/msp/auroc")
    assert point.step == best_epoch
    before = run.data.metrics

    def ood(sets: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "entrypoints.ood", "--run-id", outcome.run_id]
        env = {**subprocess_env(tracking_store), "PYTHONPATH": str(ROOT)}
        return subprocess.run(
            [*command, "--sets", sets], cwd=tmp_path, env=env, capture_output=True, text=True
        )

    (root / "test_32x32.mat").write_bytes(b"not a MATLAB file")
    for sets, problem in (("svhn", "not a readable .mat file"), ("cifar10_c", "not found")):
        done = ood(sets)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("calibexp: error: ") and problem in lines[0]
        after = client.get_run(outcome.run_id)
        assert after.info.status == "FINISHED" and after.data.metrics == before
    done = ood("svhn_x")
    assert done.returncode == 2 and "did you mean 'svhn'" in done.stderr
