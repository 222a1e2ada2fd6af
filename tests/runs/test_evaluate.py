"""`evaluate` rebuilds a finished run's model from its config and checkpoint and reproduces its
logged test metrics exactly, into a new run linked to the source."""

from __future__ import annotations

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from calibexp.config import load_config
from calibexp.reevaluate import reevaluate
from calibexp.run import run_experiment
from tests.support import FAST, ROOT, mlflow_run

pytestmark = pytest.mark.slow


@pytest.fixture
def finished(tracking_store):
    cfg = load_config(ROOT / "configs/demo.yaml", FAST)
    return MlflowClient(tracking_store), run_experiment(cfg).run_id


def test_evaluate_reproduces_test_metrics_exactly(finished):
    client, source_id = finished
    source = client.get_run(source_id)
    result = reevaluate(source_id)
    evaluation = client.get_run(result.run_id)
    assert evaluation.info.status == "FINISHED" and result.run_id != source_id
    for key in ("test/acc", "test/nll", "test/ece_15", "test_ts/nll", "ts/temperature"):
        assert evaluation.data.metrics[key] == source.data.metrics[key], key
    tags = evaluation.data.tags
    assert tags["calibexp.source_run_id"] == source_id == tags["mlflow.parentRunId"]
    assert tags["calibexp.checkpoint"] == "last" and tags["calibexp.checkpoint_epoch"] == "2"
    assert evaluation.data.params == {k: v for k, v in source.data.params.items()}
    for split in ("val", "test"):
        a = np.load(client.download_artifacts(source_id, f"logits/{split}.npz"))
        b = np.load(client.download_artifacts(result.run_id, f"logits/{split}.npz"))
        assert np.array_equal(a["logits"], b["logits"]) and np.array_equal(
            a["targets"], b["targets"]
        )


def test_evaluate_the_best_checkpoint(finished):
    client, source_id = finished
    result = reevaluate(source_id, "best")
    tags = client.get_run(result.run_id).data.tags
    val_nll = {m.step: m.value for m in client.get_metric_history(source_id, "val/nll")}
    assert tags["calibexp.checkpoint"] == "best"
    assert int(tags["calibexp.checkpoint_epoch"]) == min(val_nll, key=lambda e: (val_nll[e], e))


def test_evaluate_through_mlflow_run(finished, tracking_store):
    client, source_id = finished
    done = mlflow_run(tracking_store, "-P", f"run_id={source_id}", entry="evaluate")
    assert done.returncode == 0, done.stderr[-3000:]
    (evaluation,) = [
        r
        for r in client.search_runs(["0"])
        if r.data.tags.get("calibexp.source_run_id") == source_id
    ]
    assert evaluation.data.tags["mlflow.project.entryPoint"] == "evaluate"
    source = client.get_run(source_id).data.metrics
    assert evaluation.data.metrics["test/acc"] == source["test/acc"]
    assert evaluation.data.metrics["test/nll"] == source["test/nll"]


def test_log_model_option_registers_a_loadable_model(tracking_store):
    import mlflow
    import torch

    cfg = load_config(
        ROOT / "configs/demo.yaml", [*FAST, "tracking.log_model=true", "train.epochs=1"]
    )
    run_id = run_experiment(cfg).run_id
    client = MlflowClient(tracking_store)
    assert client.get_run(run_id).info.status == "FINISHED"
    (logged,) = mlflow.search_logged_models(
        experiment_ids=[client.get_run(run_id).info.experiment_id], output_format="list"
    )
    assert logged.source_run_id == run_id
    model = mlflow.pytorch.load_model(logged.model_uri)
    checkpoint = torch.load(
        client.download_artifacts(run_id, "checkpoints/last.pt"), weights_only=True
    )
    for name, tensor in checkpoint["model"].items():
        assert torch.equal(model.state_dict()[name], tensor), name
