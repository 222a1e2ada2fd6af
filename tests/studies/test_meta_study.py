"""The meta-calibration study: its CIFAR spec and the digits one search the same meta settings,
and the digits one runs as a study, smoke-sized, each trial a meta-calibration run."""

from __future__ import annotations

import pytest
import yaml
from mlflow.tracking import MlflowClient

from calibexp.studies import load_spec
from calibexp.studies.runner import run_study
from tests.support import ROOT

META = ROOT / "studies/dece_meta.yaml"
DEMO = ROOT / "studies/dece_meta_demo.yaml"


def test_the_demo_searches_every_setting_the_cifar_study_does():
    cifar, demo = load_spec(META, root=ROOT), load_spec(DEMO, root=ROOT)
    assert [p.key for p in demo.space] == [p.key for p in cifar.space]
    assert {p.key for p in cifar.space} >= {
        "meta.name",
        "meta.lr",
        "meta.beta",
        "meta.t_a",
        "meta.t_b",
        "data.meta_val_size",
    }
    learners = next(p for p in cifar.space if p.key == "meta.name").choices
    assert set(learners) == {
        "label_smoothing_scalar",
        "label_smoothing_vector",
        "label_smoothing_nonuniform",
        "l2_head",
    }


@pytest.mark.slow
def test_the_meta_study_runs_smoke_sized(tracking_store, tmp_path):
    raw = yaml.safe_load(DEMO.read_text())
    raw["overrides"] += ["train.epochs=2", "model.width=8"]
    raw["n_trials"] = 4
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    study = run_study(load_spec(path, root=ROOT), f"sqlite:///{tmp_path}/optuna.db")

    finished = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(finished) == 4
    client = MlflowClient(tracking_store)
    for trial in finished:
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert run.data.params["meta.name"] == trial.params["meta.name"]
        assert float(run.data.params["meta.lr"]) == pytest.approx(trial.params["meta.lr"])
        assert int(run.data.params["data.meta_val_size"]) == trial.params["data.meta_val_size"]
        history = client.get_metric_history(run.info.run_id, "meta/dece")
        assert sorted(m.step for m in history) == [0, 1]  # every trial meta-learned
        assert trial.values == [run.data.metrics["val/acc"], run.data.metrics["val/ece_15"]]


def test_a_pareto_front_of_one_trial_is_summarised_as_the_best(tracking_store, tmp_path):
    """Two objectives where one trial dominates the others: its values are ``best/<metric>``
    on the parent, its run the best run (``trial.value`` would raise for two objectives)."""
    import optuna

    from calibexp.studies.summary import log_summary

    spec = load_spec(DEMO, root=ROOT)
    study = optuna.create_study(directions=["maximize", "minimize"])
    distribution = optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)
    for number, values in enumerate([[0.9, 0.05], [0.95, 0.02], [0.8, 0.04]]):
        study.add_trial(
            optuna.trial.create_trial(
                values=values,
                params={"meta.lr": 1e-3 * (number + 1)},
                distributions={"meta.lr": distribution},
                user_attrs={"mlflow_run_id": f"run-{number}"},
            )
        )
    client = MlflowClient(tracking_store)
    parent = client.create_run(client.create_experiment("summary")).info.run_id
    log_summary(client, study, spec, parent)
    run = client.get_run(parent)
    assert run.data.metrics["best/val/acc"] == 0.95
    assert run.data.metrics["best/val/ece_15"] == 0.02
    assert run.data.tags["calibexp.best_run_id"] == "run-1"
    assert run.data.tags["best.meta.lr"] == "0.002"
