"""A registry-parametrized run of the demo, one epoch with every loss: the loss's evidence is
logged per epoch as ``evidence/<key>``, and the evidence plots are drawn from that history."""

from __future__ import annotations

import math

import pytest
import torch
from mlflow.tracking import MlflowClient

from calibexp.config import load_config
from calibexp.losses import LOSSES
from calibexp.run import run_experiment
from tests.support import FAST, ROOT

pytestmark = pytest.mark.slow


def evidence_keys(name: str) -> set[str]:
    loss = LOSSES.build(name)
    z, y = torch.randn(8, 10), torch.randint(0, 10, (8,))
    return {f"evidence/{k}" for k in [*loss.components(z, y), *loss.diagnostics(z, y)]}


@pytest.mark.parametrize("name", LOSSES.names())
def test_one_demo_epoch_logs_the_evidence_and_draws_it(name, tracking_store, tmp_path):
    cfg = load_config(ROOT / "configs/demo.yaml", [*FAST, "train.epochs=1", f"loss.name={name}"])
    run_id = run_experiment(cfg).run_id
    client = MlflowClient(tracking_store)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["calibexp.loss"] == name
    keys = evidence_keys(name)
    assert "evidence/p_t" in keys
    for key in keys:
        history = client.get_metric_history(run_id, key)
        assert [m.step for m in history] == [0], key
        assert math.isfinite(history[0].value), key
    logged = {k for k in run.data.metrics if k.startswith("evidence/")}
    assert logged == keys
    if name == "safcl":
        assert run.data.metrics["evidence/gate_grad_norm"] == 0.0
    if name == "safcl_nodetach":
        assert run.data.metrics["evidence/gate_grad_norm"] > 0.0
    if name in ("safcl", "safcl_nodetach", "fcl_ungated"):
        m = run.data.metrics
        assert 0 < m["evidence/p_t"] < 1 and 0 <= m["evidence/w"] <= 1
        assert m["evidence/w_brier"] <= m["evidence/brier"] + 1e-9
    # the evidence plots, drawn from that history at the end of the run
    plots = {a.path for a in client.list_artifacts(run_id, "plots")}
    assert {"plots/evidence_components.png", "plots/ece_vs_acc.png"} <= plots
    gated = "evidence/gate_grad_norm" in keys
    assert gated == ("plots/gate_gradient.png" in plots)
    assert gated == (name in ("safcl", "safcl_nodetach"))
    for path in plots & {"plots/evidence_components.png", "plots/gate_gradient.png"}:
        local = client.download_artifacts(run_id, path, str(tmp_path))
        assert open(local, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
