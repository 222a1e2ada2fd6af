"""A run is continued and evaluated on the samples it was trained on: a config logged before
``data.split`` existed is read with calibexp's earlier ``permutation`` split, and a run whose
config builds another split here (other files) is refused with one line."""

from __future__ import annotations

import pytest
import yaml
from mlflow.tracking import MlflowClient

from calibexp.config import load_config, to_dict
from calibexp.data import DATASETS
from calibexp.errors import CalibexpError
from calibexp.reevaluate import reevaluate
from calibexp.run import run_experiment, source_config
from tests.support import FAST, ROOT
from tests.support.fake_datasets import write_cifar10


def cifar_run(tmp_path, *overrides: str) -> str:
    root = tmp_path / "data"
    write_cifar10(root)
    cfg = load_config(
        ROOT / "configs/demo.yaml",
        [*FAST, "data.name=cifar10", f"data.root={root}", "data.val_size=10", *overrides],
    )
    return run_experiment(cfg).run_id


def test_a_config_logged_before_data_split_is_read_as_the_permutation(tracking_store, tmp_path):
    run_id = cifar_run(tmp_path, "data.split=permutation")
    client = MlflowClient(tracking_store)
    # the config.yaml such a run logged before the key existed: the same, without data.split
    logged = to_dict(source_config(client, run_id))
    del logged["data"]["split"]
    old = tmp_path / "old" / "config.yaml"
    old.parent.mkdir()
    old.write_text(yaml.safe_dump(logged))
    client.log_artifact(run_id, str(old))
    assert source_config(client, run_id).data.split == "permutation"
    # re-evaluated on the split it was trained on: the same test metrics
    trained = client.get_run(run_id).data.metrics
    again = reevaluate(run_id, "last").metrics
    assert again["test/nll"] == pytest.approx(trained["test/nll"], rel=1e-6)
    # digits has no data.split: its logged configs are read as they are
    assert "split" not in DATASETS.schema("digits").__dataclass_fields__


def test_a_run_whose_config_builds_another_split_here_is_refused(tracking_store, tmp_path):
    run_id = cifar_run(tmp_path)
    client = MlflowClient(tracking_store)
    client.set_tag(run_id, "calibexp.split_digest", "0123456789abcdef")
    with pytest.raises(CalibexpError) as err:
        reevaluate(run_id, "last")
    message = str(err.value)
    assert "\n" not in message and "trained on split 0123456789abcdef" in message
    assert "data.root" in message
