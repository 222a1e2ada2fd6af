"""The report of a real sweep (2 losses × 3 seeds × 2 epochs, trained by ``mlflow run . -e
sweep``), made by ``mlflow run . -e report``: its CSV against a computation from
``mlflow.search_runs`` written here, n = 3 per group, a deleted run flagged as a missing seed,
and the figures logged to the report run and readable."""

from __future__ import annotations

import re

import matplotlib.image
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from calibexp.reports import make_report, report_spec
from calibexp.reports.selection import REPORT_TAG
from tests.support import ROOT, mlflow_run

pytestmark = pytest.mark.slow

LOSSES = ("ce", "focal")
EXPERIMENT = "Default"  # where `mlflow run` puts the sweep's runs


def test_report_of_a_sweep_equals_search_runs(tmp_path, tracking_store):
    spec = tmp_path / "sweep.yaml"
    configs = ", ".join(str(ROOT / f"configs/digits/small_cnn/{loss}.yaml") for loss in LOSSES)
    spec.write_text(
        "name: sweep-report-test\n"
        f"configs: [{configs}]\n"
        "seeds: [0, 1, 2]\n"
        "overrides: [train.epochs=2, train.progress=false, model.width=16]\n"
    )
    trained = mlflow_run(tracking_store, "-P", f"spec={spec}", entry="sweep")
    assert trained.returncode == 0, trained.stderr[-3000:]
    out = tmp_path / "report"
    made = mlflow_run(
        tracking_store, "-P", f"select=sweep:{spec}", "-P", f"out={out}", entry="report"
    )
    assert made.returncode == 0, made.stderr[-3000:]

    # the oracle: search_runs, grouped by loss, mean and sample std (ddof = 1) by hand
    experiment = MlflowClient().get_experiment_by_name(EXPERIMENT).experiment_id
    runs = mlflow.search_runs([experiment], "attributes.status = 'FINISHED'")
    runs = runs[runs["tags.calibexp.run_key"].notna()]
    runs = runs[runs.get("tags.calibexp.launcher_of", pd.Series(index=runs.index)).isna()]
    assert len(runs) == 6
    table = pd.read_csv(out / "table.csv")
    checked = 0
    for loss in LOSSES:
        mine = runs[runs["params.loss.name"] == loss]
        assert sorted(mine["params.seed"].astype(int)) == [0, 1, 2]
        for key in ("test/ece_15", "test_ts_grid/ece_15", "test/nll", "test/smece",
                    "test/adaece_15", "test/classece_15", "error"):  # fmt: skip
            values = (1 - mine["metrics.test/acc"]) if key == "error" else mine[f"metrics.{key}"]
            values = values.to_numpy(dtype=float)
            n = len(values)
            mean = sum(values) / n
            std = (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5
            row = table[(table["loss"] == loss) & (table["column"] == key)].iloc[0]
            assert row["n"] == 3
            assert abs(row["mean"] - mean) <= 1e-12 and abs(row["std"] - std) <= 1e-12, key
            checked += 1
        row = table[(table["loss"] == loss) & (table["column"] == "test_ts_grid/ece_15")].iloc[0]
        assert abs(row["temperature"] - mine["metrics.ts_grid/temperature"].mean()) <= 1e-12
    assert checked == 14

    # the report run holds the files and readable figures
    client = MlflowClient()
    reports = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], f"tags.`{REPORT_TAG}` != ''"
    )
    assert len(reports) == 1 and reports[0].info.status == "FINISHED"
    report_run = reports[0].info.run_id
    folder = client.download_artifacts(report_run, "report", str(tmp_path / "logged"))
    for name in ("reliability_evolution.png", "val_curves.png", "evidence.png"):
        pixels = matplotlib.image.imread(f"{folder}/{name}")
        assert pixels.ndim == 3 and pixels.shape[0] > 300 and pixels.shape[1] > 500, name
        assert pixels[..., :3].std() > 0.05, name  # drawn, not blank
        assert (out / name).read_bytes() == open(f"{folder}/{name}", "rb").read()
    evolution = matplotlib.image.imread(f"{folder}/reliability_evolution.png")
    assert evolution.shape[0] > evolution.shape[1] * 0.9  # two method rows of two epochs
    assert re.search(r"\| digits +\| small_cnn +\| ce +\|", made.stdout)  # the table, printed

    # the same runs selected by the sweep's name (its summary run's table), no spec file needed
    make_report(report_spec("sweep:sweep-report-test"), tmp_path / "by-name", draw=False)
    assert (tmp_path / "by-name/table.csv").read_bytes() == (out / "table.csv").read_bytes()

    # a deleted run is a missing seed of its group, said in the table
    gone = runs[(runs["params.loss.name"] == "focal") & (runs["params.seed"] == "1")]
    client.delete_run(gone["run_id"].iloc[0])
    again = make_report(report_spec(f"sweep:{spec}"), tmp_path / "again", draw=False)
    table = pd.read_csv(tmp_path / "again/table.csv")
    focal = table[(table["loss"] == "focal") & (table["column"] == "test/ece_15")].iloc[0]
    assert focal["n"] == 2 and focal["seeds"] == "0 2"
    assert "missing seed(s) 1: n = 2 of 3" in focal["flags"]
    markdown = (tmp_path / "again/table.md").read_text()
    assert "digits/small_cnn/focal/calibexp: missing seed(s) 1: n = 2 of 3" in markdown
    ece = table[table["column"] == "test/ece_15"].set_index("loss")
    if not ece.loc["focal", "best"]:  # seeds {0, 2} against {0, 1, 2}: not tested
        assert not ece.loc["focal", "tested"] and not ece.loc["focal", "bold"]
    assert np.isclose(
        focal["mean"],
        runs[(runs["params.loss.name"] == "focal") & (runs["params.seed"] != "1")][
            "metrics.test/ece_15"
        ].mean(),
        rtol=0,
        atol=1e-12,
    )
    assert again.run_id != report_run

    # a refused report: one line, exit non-zero, its launcher run FAILED and tagged as a report
    # run, so no later report lists it
    refused = mlflow_run(tracking_store, "-P", "select=experiment:nope", entry="report")
    assert refused.returncode != 0
    assert "calibexp: error: experiment 'nope' is not in the store; experiments in the store:" in (
        refused.stderr
    )
    failed = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], "attributes.status = 'FAILED'"
    )
    assert [r.data.tags.get(REPORT_TAG) for r in failed] == ["(refused: experiment:nope)"]
    listed = make_report(report_spec(f"experiment:{EXPERIMENT}"), tmp_path / "3", draw=False)
    assert failed[0].info.run_id not in set(listed.table.runs["run_id"])
    assert "run without a run key" not in (tmp_path / "3/table.md").read_text()
