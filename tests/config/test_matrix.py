"""The paper matrix: every dataset x backbone x loss cell is composed from configs/matrix.yaml,
the names other repositories use are the same configs as their targets, the few files that
hold values of their own are layered on top, and several config files compose one run."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from calibexp.config import load_config, run_key, to_dict
from calibexp.errors import CalibexpError
from calibexp.matrix import MATRIX_FILE, Matrix, matching_cells
from tests.support import ROOT

CONFIGS = ROOT / "configs"
MATRIX = Matrix(CONFIGS, yaml.safe_load((CONFIGS / MATRIX_FILE).read_text()))


# every cell in CI; in the fast loop, the first model of each dataset (all losses)
CELLS = [
    pytest.param(
        cell,
        id="/".join(cell.parts[-3:]),
        marks=()
        if cell.parts[-2] == MATRIX.datasets[cell.parts[-3]]["models"][0]
        else [pytest.mark.slow],
    )
    for cell in MATRIX.cells()
]


@pytest.mark.parametrize("cell", CELLS)
def test_every_cell_loads_as_its_dataset_model_and_loss(cell):
    dataset, model, loss = cell.parts[-3], cell.parts[-2], cell.stem
    cfg = load_config(cell)
    assert (
        cfg.data.name
        == yaml.safe_load((CONFIGS / f"_base_/datasets/{dataset}.yaml").read_text())["data"]["name"]
    )
    model_base = yaml.safe_load((CONFIGS / f"_base_/models/{model}.yaml").read_text())["model"]
    assert cfg.model.name == model_base["name"]
    target = MATRIX.aliases.get(loss, loss)
    loss_base = yaml.safe_load((CONFIGS / f"_base_/losses/{target}.yaml").read_text())["loss"]
    assert cfg.loss.name == loss_base["name"]
    expected = "calibexp-demo" if dataset == "digits" else f"{dataset}-{model}"
    assert cfg.tracking.experiment == expected


@pytest.mark.parametrize("alias, target", sorted(MATRIX.aliases.items()))
def test_an_alias_is_its_target_run(alias, target):
    for dataset, entry in MATRIX.datasets.items():
        model = entry["models"][0]
        a = load_config(CONFIGS / dataset / model / f"{alias}.yaml")
        b = load_config(CONFIGS / dataset / model / f"{target}.yaml")
        assert run_key(a) == run_key(b)
        # the same config in every leaf but the file it says it came from
        assert a.tracking.config != b.tracking.config
        a_leaves, b_leaves = to_dict(a), to_dict(b)
        a_leaves["tracking"].pop("config"), b_leaves["tracking"].pop("config")
        assert a_leaves == b_leaves


def test_the_label_smoothing_conventions_are_two_names():
    spread_all = load_config(ROOT / "configs/digits/small_cnn/label_smoothing.yaml").loss
    spread_others = load_config(ROOT / "configs/digits/small_cnn/label_smoothing_others.yaml").loss
    assert (spread_all.spread, spread_others.spread) == ("all", "others")
    assert load_config(ROOT / "configs/digits/small_cnn/label_smooth.yaml").loss == spread_others


def test_files_at_a_cell_add_their_values_on_top():
    assert load_config(ROOT / "configs/cifar10/resnet110/dual_focal.yaml").loss.gamma == 4.5
    assert load_config(ROOT / "configs/cifar100/resnet110/dual_focal.yaml").loss.gamma == 6.1
    assert load_config(ROOT / "configs/tiny_imagenet/resnet50/dual_focal.yaml").loss.gamma == 5.0
    cell_files = [p for p in CONFIGS.glob("*/*/*.yaml") if p.parts[-3] != "_base_"]
    assert len(cell_files) == 10  # 8 dual focal, 2 of torrvision's longer Brier runs
    for path in cell_files:  # such a file holds values, not _base_ lines
        assert "_base_" not in yaml.safe_load(path.read_text()), path


def test_per_dataset_loss_values():
    assert load_config(ROOT / "configs/cifar10/resnet50/mmce.yaml").loss.pair_reduction == "mean"
    assert (
        load_config(ROOT / "configs/tiny_imagenet/resnet50/mmce.yaml").loss.pair_reduction == "mean"
    )
    assert load_config(ROOT / "configs/digits/small_cnn/mmce.yaml").loss.pair_reduction == "mean"


def test_weight_decay_is_set_in_one_layer():
    def sets_it(path: Path) -> bool:  # the optimiser's (meta.weight_decay is Adam's, on λ)
        return "weight_decay" in ((yaml.safe_load(path.read_text()) or {}).get("optim") or {})

    setting = [p for p in CONFIGS.rglob("*.yaml") if sets_it(p)]
    assert [p.relative_to(CONFIGS).as_posix() for p in setting] == ["_base_/schedules/sgd.yaml"]
    for path in ("configs/demo.yaml", "configs/cifar10/resnet50/wd_ce.yaml"):
        assert load_config(ROOT / path).optim.weight_decay == 5.0e-4


def test_the_hand_written_yaml_files_are_at_most_half_of_the_168_they_were():
    assert len(list(CONFIGS.rglob("*.yaml"))) <= 168 // 2


@pytest.mark.parametrize(
    "path, message",
    [
        ("configs/cifar10/resnet50/safcl2.yaml", "loss 'safcl2' (did you mean 'safcl'?)"),
        ("configs/cifar10/resnet51/ce.yaml", "model 'resnet51' (did you mean 'resnet50'?)"),
        ("configs/cifar11/resnet50/ce.yaml", "dataset 'cifar11' (did you mean 'cifar10'?)"),
        ("configs/nope.yaml", "config file not found"),
    ],
)
def test_a_path_that_names_no_cell_is_one_line_naming_the_part(path, message):
    with pytest.raises(CalibexpError) as err:
        load_config(ROOT / path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_cell_is_a_base_like_a_file(tmp_path):
    """A user's experiment file may build on a cell of the matrix, which is no file."""
    cell = CONFIGS / "digits/small_cnn/brier.yaml"
    mine = tmp_path / "mine.yaml"
    mine.write_text(f"_base_: [{cell}]\ntrain: {{epochs: 2}}\n")
    loaded, direct = load_config(mine), load_config(cell, ["train.epochs=2"])
    assert loaded.loss.name == "brier" and loaded.train.epochs == 2
    assert run_key(loaded) == run_key(direct)


def test_several_config_files_compose_one_run():
    demo, focal = CONFIGS / "demo.yaml", CONFIGS / "_base_/losses/focal.yaml"
    spaced = load_config(f"{demo} {focal}", ["loss.gamma=2"])
    listed = load_config([str(demo), focal])
    assert spaced.loss.name == listed.loss.name == "focal"
    assert (spaced.loss.gamma, listed.loss.gamma) == (2.0, 3.0)
    assert (
        spaced.data == load_config(ROOT / "configs/demo.yaml").data
    )  # the rest from the first file
    # a component whose name changes is replaced, not merged: no stray gamma from focal
    ce = CONFIGS / "_base_/losses/ce.yaml"
    back, plain = to_dict(load_config([demo, focal, ce])), to_dict(load_config(demo))
    # every leaf alike, except the record of which files the run was loaded from (each
    # relative to the project folder, whatever path was given)
    assert back["tracking"].pop("config") == (
        "configs/demo.yaml configs/_base_/losses/focal.yaml configs/_base_/losses/ce.yaml"
    )
    assert plain["tracking"].pop("config") == "configs/demo.yaml"
    assert back == plain


def test_a_wildcard_matches_each_configuration_once():
    every = matching_cells(CONFIGS / "cifar10/resnet50/*.yaml")
    assert {p.stem for p in every} == set(MATRIX.losses)
    assert matching_cells(CONFIGS / "cifar10/resnet50/wd_ce.yaml") == [
        CONFIGS / "cifar10/resnet50/wd_ce.yaml"
    ]
    keys = [run_key(load_config(p)) for p in every]
    assert len(set(keys)) == len(keys)
