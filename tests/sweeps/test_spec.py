"""Sweep specs: the grid they make, and one clear error for each way a spec can be wrong."""

from __future__ import annotations

import pytest
import yaml

from calibexp.config import load_config, run_key
from calibexp.errors import CalibexpError
from calibexp.sweeps import load_sweep
from tests.support import ROOT

SWEEPS = sorted((ROOT / "studies").glob("sweep_*.yaml"))


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_every_shipped_sweep_is_valid(path):
    spec = load_sweep(path, root=ROOT)
    keys = [run_key(c.cfg) for c in spec.cells]
    assert len(keys) == len(set(keys))  # every cell a different config


def test_the_demo_grid():
    spec = load_sweep(ROOT / "studies/sweep_demo.yaml", root=ROOT)
    assert len(spec.cells) == 4 * 3
    assert {c.cfg.loss.name for c in spec.cells} == {"ce", "focal", "brier", "safcl"}
    assert sorted({c.cfg.seed for c in spec.cells}) == [0, 1, 2]
    assert all(c.cfg.train.epochs == 3 for c in spec.cells)
    first = spec.cells[0]
    expected = load_config(ROOT / "configs/digits/small_cnn/ce.yaml", list(first.overrides))
    assert first.cfg == expected and first.label == "configs/digits/small_cnn/ce.yaml seed=0"


def write(tmp_path, **raw):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"name": "t", **raw}))
    return path


def test_globs_and_axes_make_the_product(tmp_path):
    spec = load_sweep(
        write(
            tmp_path,
            configs=["configs/digits/small_cnn/focal.yaml", "configs/digits/small_cnn/ce.yaml"],
            seeds=[0, 1],
            axes={"optim.lr": [0.05, 0.1], "model.width": [8, 16]},
        ),
        root=ROOT,
    )
    assert len(spec.cells) == 2 * 2 * 2 * 2
    assert {(c.cfg.optim.lr, c.cfg.model.width) for c in spec.cells} == {
        (0.05, 8),
        (0.05, 16),
        (0.1, 8),
        (0.1, 16),
    }
    assert spec.cells[0].label.endswith("focal.yaml seed=0 model.width=8 optim.lr=0.05")
    cifar = load_sweep(write(tmp_path, configs=["configs/cifar10/resnet50/s*.yaml"]), root=ROOT)
    # paper-matrix cells, each configuration once: safcl_nostop is safcl_nodetach's alias
    assert [c.config.name for c in cifar.cells] == ["safcl.yaml", "safcl_nodetach.yaml"]


@pytest.mark.parametrize(
    "raw, message",
    [
        (
            {"configs": ["configs/demo.yaml"], "seed": [0]},
            "unknown key 'seed' (did you mean 'seeds'?)",
        ),
        ({"configs": []}, "'configs' is required"),
        (
            {"configs": ["configs/nope/*.yaml"]},
            "configs entry 'configs/nope/*.yaml' matches no file",
        ),
        (
            {"configs": ["configs/demo.yaml"], "seeds": [0, 0]},
            "expected a non-empty list of distinct ints",
        ),
        (
            {"configs": ["configs/demo.yaml"], "seeds": "0"},
            "expected a non-empty list of distinct ints",
        ),
        (
            {"configs": ["configs/demo.yaml"], "axes": {"optim.lr": []}},
            "non-empty lists of distinct",
        ),
        (
            {"configs": ["configs/demo.yaml"], "axes": {"optim.lrr": [0.1]}},
            "cell 'configs/demo.yaml seed=0 optim.lrr=0.1': unknown config key 'optim.lrr'",
        ),
        (
            {"configs": ["configs/demo.yaml"], "overrides": ["optim.lr=-1"]},
            "cell 'configs/demo.yaml seed=0'",
        ),
    ],
)
def test_a_bad_spec_is_one_clear_error(tmp_path, raw, message):
    with pytest.raises(CalibexpError) as err:
        load_sweep(write(tmp_path, **raw), root=ROOT)
    assert message in str(err.value) and "\n" not in str(err.value)
