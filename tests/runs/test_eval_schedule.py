"""What ``eval.val_every``, ``eval.diagram_every``, ``eval.diagram_budget`` and
``eval.evolution_epochs`` change in a run,
read back through ``MlflowClient``."""

from __future__ import annotations

from pathlib import Path

from mlflow.tracking import MlflowClient

from calibexp.config import load_config
from calibexp.diagrams import EVOLUTION
from calibexp.plots.reliability import DPI, PANEL_SIZE
from calibexp.run import run_experiment
from tests.support import FAST, ROOT, png_size

FIVE_EPOCHS = [*FAST, "train.epochs=5", "model.width=8"]


def steps(client: MlflowClient, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def image_steps(client: MlflowClient, run_id: str) -> list[int]:
    names = [Path(a.path).name for a in client.list_artifacts(run_id, "images")]
    return sorted(int(n.split("+step+")[1].split("+")[0]) for n in names if n.endswith(".png"))


def test_val_every_and_no_diagrams(tracking_store):
    cfg = load_config(
        ROOT / "configs/demo.yaml", [*FIVE_EPOCHS, "eval.val_every=2", "eval.diagram_every=0"]
    )
    run_id = run_experiment(cfg).run_id
    client = MlflowClient(tracking_store)
    assert steps(client, run_id, "train/loss") == [0, 1, 2, 3, 4]
    assert steps(client, run_id, "val/ece_15") == steps(client, run_id, "val/smece") == [1, 3, 4]
    assert image_steps(client, run_id) == []
    assert client.list_artifacts(run_id, "tables/reliability_val") == []
    plots = [a.path for a in client.list_artifacts(run_id, "plots")]
    assert EVOLUTION not in plots and "plots/reliability_test_before_after.png" in plots
    # best.pt comes from an evaluated epoch
    from calibexp.tracking.checkpoints import BEST, load_checkpoint

    assert load_checkpoint(client, run_id, BEST)["epoch"] in (1, 3, 4)


def test_diagram_every_and_chosen_evolution_epochs(tracking_store, tmp_path):
    cfg = load_config(
        ROOT / "configs/demo.yaml",
        [
            *FIVE_EPOCHS,
            "eval.diagram_every=2",
            "eval.diagram_budget=null",
            "eval.evolution_epochs=[4,0]",
        ],
    )
    run_id = run_experiment(cfg).run_id
    client = MlflowClient(tracking_store)
    assert steps(client, run_id, "val/ece_15") == [0, 1, 2, 3, 4]
    assert image_steps(client, run_id) == [0, 2, 4]
    local = Path(client.download_artifacts(run_id, EVOLUTION, str(tmp_path)))
    assert png_size(local)[0] == 2 * round(PANEL_SIZE[0] * DPI)  # the two chosen epochs


def test_a_spent_diagram_budget_leaves_out_the_middle_frames_but_no_table(tracking_store):
    # A budget no frame fits in: the first frame (nothing spent yet) and the last (always) are
    # drawn, the three between are not; every epoch's table is logged all the same.
    cfg = load_config(ROOT / "configs/demo.yaml", [*FIVE_EPOCHS, "eval.diagram_budget=1e-9"])
    run_id = run_experiment(cfg).run_id
    client = MlflowClient(tracking_store)
    assert client.get_run(run_id).info.status == "FINISHED"
    assert image_steps(client, run_id) == [0, 4]
    tables = [Path(a.path).name for a in client.list_artifacts(run_id, "tables/reliability_val")]
    assert tables == [f"epoch_{e:04d}.json" for e in range(5)]
    plots = [a.path for a in client.list_artifacts(run_id, "plots")]
    assert EVOLUTION in plots  # drawn from the tables, so it still shows the chosen epochs
