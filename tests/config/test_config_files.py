"""Every config under configs/ (the demo, the paper matrix's cells, the _base_ pieces composed
with the demo) is valid, and the SA-FCL repository's loop over loss names finds a config for
every paper setting."""

from __future__ import annotations

import pytest
import yaml

from calibexp.config import _load_top, load_config
from calibexp.data import DATASETS
from calibexp.errors import CalibexpError
from calibexp.matrix import MATRIX_FILE, Matrix
from calibexp.models import BACKBONES
from tests.support import ROOT

CONFIGS = ROOT / "configs"
MATRIX = Matrix(CONFIGS, yaml.safe_load((CONFIGS / MATRIX_FILE).read_text()))
# the demo and the cells that have a file; every cell is loaded by tests/config/test_matrix.py
EXPERIMENTS = [CONFIGS / "demo.yaml", *(p for p in MATRIX.cells() if p.is_file())]
SA_FCL_LOOP = [
    "wd_ce",
    "label_smooth",
    "brier",
    "mmce",
    "flsd53",
    "dual_focal",
    "fcl_ungated",
    "safcl",
    "safcl_nostop",
]
PAPER = [
    (d, m)
    for d in ("cifar10", "cifar100")
    for m in ("resnet50", "resnet110", "wrn26_10", "densenet121")
]
DFL_GAMMA = {"cifar10": [5.0, 4.5, 2.6, 5.0], "cifar100": [5.0, 6.1, 3.9, 3.4]}


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_experiment_config_is_valid(path):
    raw = _load_top(path)
    if raw.data.name in DATASETS.names() and raw.model.name in BACKBONES.names():
        load_config(path)
        return
    # A paper setting whose dataset or backbone is not registered yet stops at config time,
    # naming it; every other section is checked with the demo's data and model in their place.
    with pytest.raises(CalibexpError, match=r"unknown (dataset|backbone) '"):
        load_config(path)
    load_config(path, ["data.name=digits", "model.name=small_cnn"])


@pytest.mark.parametrize("path", sorted((CONFIGS / "_base_").rglob("*.yaml")), ids=str)
def test_every_base_piece_composes_with_the_demo(path):
    cfg = load_config([CONFIGS / "demo.yaml", path], ["data.name=digits", "model.name=small_cnn"])
    section = next(iter(yaml.safe_load(path.read_text()).keys() - {"_base_"}))
    assert section in ("data", "model", "loss", "optim", "schedule", "train", "meta")
    assert cfg.train.epochs >= 1


@pytest.mark.parametrize(
    "dataset, model", [*PAPER, ("digits", "small_cnn"), ("tiny_imagenet", "resnet50")]
)
def test_the_sa_fcl_loop_finds_every_config(dataset, model):
    for name in SA_FCL_LOOP:
        cfg = load_config(CONFIGS / dataset / model / f"{name}.yaml")
        assert cfg.data.name == dataset, name


def resolved(path, *more):
    return load_config(CONFIGS / path, ["data.name=digits", "model.name=small_cnn", *more])


@pytest.mark.parametrize("dataset, model", PAPER)
def test_paper_settings(dataset, model):
    cfg = resolved(f"{dataset}/{model}/safcl_nostop.yaml")
    assert cfg.loss.name == "safcl_nodetach"
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.schedule.milestones) == (
        350,
        128,
        [150, 250],
    )
    assert (cfg.optim.lr, cfg.optim.momentum, cfg.optim.weight_decay) == (0.1, 0.9, 5e-4)
    assert resolved(f"{dataset}/{model}/wd_ce.yaml").loss.name == "ce"
    assert resolved(f"{dataset}/{model}/label_smooth.yaml").loss.spread == "others"
    assert resolved(f"{dataset}/{model}/mmce.yaml").loss.pair_reduction == "mean"
    index = ["resnet50", "resnet110", "wrn26_10", "densenet121"].index(model)
    assert resolved(f"{dataset}/{model}/dual_focal.yaml").loss.gamma == DFL_GAMMA[dataset][index]
    raw = _load_top(CONFIGS / dataset / model / "ce.yaml")
    assert (raw.data.name, raw.model.name) == (dataset, model)
