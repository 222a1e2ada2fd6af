"""What a researcher sees of a run in the MLflow UI: its name, its description (the headline
table), its dataset input and the page its experiment opens on; read back through
``MlflowClient``."""

from __future__ import annotations

import json
import random

from mlflow.tracking import MlflowClient

from calibexp.config import load_config
from calibexp.headline import DESCRIPTION_TAG, headline, headline_rows, ood_rows
from calibexp.run import run_experiment
from calibexp.tracking.ops_tags import (
    ATTEMPT_TAG,
    HOST_TAG,
    LAST_WORKER_TAG,
    OPS_PREFIX,
    PID_TAG,
    lease_tag,
)
from calibexp.tracking.run import EXPERIMENT_KIND
from tests.support import FAST, ROOT

QUICK = [*FAST, "model.width=8", "eval.diagram_every=0"]


def trained(*configs_and_overrides: str, force: bool = False):
    *configs, overrides = configs_and_overrides
    cfg = load_config([ROOT / c for c in configs], [*QUICK, *overrides.split()])
    return cfg, run_experiment(cfg, force=force)


def test_runs_are_named_by_what_they_are(tracking_store):
    client = MlflowClient(tracking_store)
    _, ce = trained("configs/demo.yaml", "")
    _, focal = trained("configs/demo.yaml", "configs/_base_/losses/focal.yaml", "")
    _, other_seed = trained("configs/demo.yaml", "seed=3")
    _, again = trained("configs/demo.yaml", "", force=True)
    names = [client.get_run(o.run_id).info.run_name for o in (ce, focal, other_seed, again)]
    assert names[:3] == [
        "digits-small_cnn-ce-s0",
        "digits-small_cnn-focal-s0",
        "digits-small_cnn-ce-s3",
    ]
    forced = client.get_run(again.run_id).data.tags
    assert forced["calibexp.forced"] == "true"
    assert names[3].startswith("digits-small_cnn-ce-s0-forced-") and len(set(names)) == 4


def test_a_name_does_not_come_from_the_seeded_rng(tracking_store):
    """MLflow draws unnamed runs' names from Python's ``random``: after the same seed, two
    unnamed runs would share a name. calibexp names them from their config, whatever the state
    of ``random``."""
    client = MlflowClient(tracking_store)
    outcomes = []
    named = "seed=1 tracking.run_name=my-baseline"
    for loss, overrides in (("ce", ""), ("brier", ""), ("ce", named)):
        random.seed(0)
        config = f"configs/_base_/losses/{loss}.yaml"
        outcomes.append(trained("configs/demo.yaml", config, f"train.epochs=2 {overrides}"))
    names = [client.get_run(o.run_id).info.run_name for _, o in outcomes]
    assert names == ["digits-small_cnn-ce-s0", "digits-small_cnn-brier-s0", "my-baseline"]


def test_description_dataset_input_and_experiment_kind(tracking_store):
    client = MlflowClient(tracking_store)
    cfg, outcome = trained("configs/demo.yaml", "")
    run = client.get_run(outcome.run_id)
    metrics = run.data.metrics
    text = run.data.tags[DESCRIPTION_TAG]
    lines = text.splitlines()
    assert lines[0] == "digits-small_cnn-ce-s0 (configs/demo.yaml), test set:"
    header = [c.strip() for c in lines[2].strip("|").split("|")]
    assert header == ["test", "acc %", "ECE-15 %", "NLL", "smECE %"]
    body = [[c.strip() for c in line.strip("|").split("|")] for line in lines[4:]]
    t = metrics["ts/temperature"]
    assert [row[0] for row in body] == [
        "uncalibrated",
        f"temperature T={t:.3g}",
        f"temperature_grid_ece T={metrics['ts_grid/temperature']:.3g}",
    ]
    assert body[0][1:] == [
        f"{100 * metrics['test/acc']:.2f}",
        f"{100 * metrics['test/ece_15']:.2f}",
        f"{metrics['test/nll']:.4f}",
        f"{100 * metrics['test/smece']:.2f}",
    ]
    assert body[1][2] == f"{100 * metrics['test_ts/ece_15']:.2f}"
    # the dataset input: the split digest, and where the data came from
    (entry,) = run.inputs.dataset_inputs
    assert entry.dataset.name == "digits"
    assert entry.dataset.digest == run.data.tags["calibexp.split_digest"]
    assert json.loads(entry.dataset.source) == {
        "tags": {"mlflow.source.name": "calibexp.data.digits"}
    }
    assert {t.key: t.value for t in entry.tags} == {"mlflow.data.context": "train/val/test"}
    # the experiment opens on the run table
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == EXPERIMENT_KIND["mlflow.experimentKind"]
    assert cfg.tracking.config == "configs/demo.yaml"  # as typed from the project, not absolute


RESEARCH_TAGS = {
    "calibexp.run_key",
    "calibexp.split_digest",
    "calibexp.dataset",
    "calibexp.model",
    "calibexp.loss",
    "calibexp.meta",
    "calibexp.seed",
    "calibexp.registry_key",
}


def test_operational_tags_sit_under_one_prefix(tracking_store):
    """Host, pid, lease (with its heartbeat) and attempt are calibexp's bookkeeping, under
    ``calibexp.ops.``; the tags a researcher filters on are the only other ``calibexp.*``."""
    client = MlflowClient(tracking_store)
    _, outcome = trained("configs/demo.yaml", "train.epochs=2")
    tags = client.get_run(outcome.run_id).data.tags
    ours = {k for k in tags if k.startswith("calibexp.")}
    ops = {k for k in ours if k.startswith(OPS_PREFIX)}
    assert ours - ops == RESEARCH_TAGS
    assert {HOST_TAG, PID_TAG, ATTEMPT_TAG, lease_tag(1)} <= ops  # failures: after a death only
    assert tags[PID_TAG].isdigit() and json.loads(tags[lease_tag(1)])["beat"] >= 1
    experiment = client.get_experiment(client.get_run(outcome.run_id).info.experiment_id)
    assert set(experiment.tags) & {k for k in experiment.tags if k.startswith("calibexp.")} <= {
        LAST_WORKER_TAG
    }


def test_headline_rows_by_hand():
    metrics = {
        "test/acc": 0.9512,
        "test/ece_10": 0.036,
        "test/nll": 0.21,
        "test/smece": 0.0305,
        "ts/temperature": 1.523,
        "test_ts/acc": 0.9512,
        "test_ts/ece_10": 0.009,
        "test_ts/nll": 0.18,
        "test_ts/smece": 0.0084,
        "ood/svhn/msp/auroc": 0.912,
        "ood/svhn/msp/aupr_in": 0.9,
        "ood/svhn/msp/aupr_out": 0.88,
        "ood/svhn/msp/fpr95": 0.4,
        "ood/svhn/entropy/auroc": 0.95,  # only MSP is in the headline
        "shift/cifar10_c/mean/5/acc": 0.6,
        "shift/cifar10_c/mean/5/ece_10": 0.2,
        "shift/cifar10_c/mean/5/nll": 1.5,
        "shift/cifar10_c/mean/5/smece": 0.19,
        "shift/cifar10_c/gaussian_noise/5/acc": 0.3,  # one corruption: not in the headline
    }
    assert headline_rows(metrics, 10, ["temperature"]) == [
        ["test", "acc %", "ECE-10 %", "NLL", "smECE %"],
        ["uncalibrated", "95.12", "3.60", "0.2100", "3.05"],
        ["temperature T=1.52", "95.12", "0.90", "0.1800", "0.84"],
        ["cifar10_c severity 5", "60.00", "20.00", "1.5000", "19.00"],
    ]
    assert ood_rows(metrics) == [
        ["OoD set (MSP)", "AUROC %", "AUPR-In %", "AUPR-Out %", "FPR@95 %"],
        ["svhn", "91.20", "90.00", "88.00", "40.00"],
    ]
    text = headline("a-run", None, metrics, 10, ["temperature"])
    last = "| svhn          | 91.20   | 90.00     | 88.00      | 40.00    |"
    assert text.splitlines()[-1] == last
