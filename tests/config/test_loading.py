"""Config loading: _base_ inheritance, dotted overrides, validation errors, freezing, export."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from calibexp.config import (
    config_from_dict,
    flatten,
    load_config,
    run_key,
    to_dict,
    to_yaml,
)
from calibexp.errors import CalibexpError
from tests.support import ROOT

DEMO = ROOT / "configs/demo.yaml"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_demo_resolves_its_bases():
    cfg = load_config(DEMO)
    assert cfg.data.name == "digits" and cfg.data.val_size == 450
    assert cfg.model.name == "small_cnn" and cfg.model.width == 64
    assert cfg.loss.name == "ce"
    assert (cfg.optim.lr, cfg.optim.momentum, cfg.optim.weight_decay) == (0.05, 0.9, 5e-4)
    assert cfg.schedule.milestones == [12, 16] and cfg.train.epochs == 20


def test_child_wins_and_lists_replace(tmp_path):
    write(
        tmp_path,
        "base.yaml",
        """
        data: {name: digits}
        model: {name: small_cnn, width: 8}
        loss: {name: ce}
        optim: {name: sgd, lr: 0.1}
        schedule: {name: multistep, milestones: [1, 2, 3]}
        train: {epochs: 5, batch_size: 32}
    """,
    )
    child = write(
        tmp_path,
        "sub/child.yaml",
        """
        _base_: ../base.yaml
        optim: {lr: 0.2}
        schedule: {milestones: [4]}
    """,
    )
    cfg = load_config(child)
    assert cfg.optim.lr == 0.2 and cfg.optim.momentum == 0.9  # merged with the schema default
    assert cfg.schedule.milestones == [4]  # a list is replaced, not merged
    assert cfg.model.width == 8 and cfg.train.batch_size == 32


def test_bases_merge_in_order(tmp_path):
    write(tmp_path, "a.yaml", "seed: 1\ntrain: {epochs: 3}\n")
    write(tmp_path, "b.yaml", "seed: 2\n")
    child = write(tmp_path, "c.yaml", f"_base_: [a.yaml, b.yaml, {DEMO}]\n")
    # the demo comes last among the bases, so its seed (0) wins over a's and b's
    assert load_config(child).seed == 0
    child = write(tmp_path, "d.yaml", f"_base_: [{DEMO}, a.yaml, b.yaml]\n")
    cfg = load_config(child)
    assert cfg.seed == 2 and cfg.train.epochs == 3


def test_renaming_a_component_replaces_its_section(tmp_path):
    child = write(tmp_path, "child.yaml", f"_base_: {DEMO}\nmodel: {{name: small_cnn}}\n")
    assert load_config(child).model.width == 64  # same name: merged
    with pytest.raises(CalibexpError, match="unknown backbone 'nope'"):
        load_config(DEMO, ["model.name=nope"])


def test_dotted_overrides_are_typed():
    cfg = load_config(
        DEMO,
        [
            "optim.lr=0.05",
            "train.epochs=2",
            "schedule.milestones=[1]",
            "train.grad_clip=2",
            "optim.nesterov=true",
            "tracking.run_name=x1",
        ],
    )
    assert cfg.optim.lr == 0.05 and cfg.train.epochs == 2 and cfg.schedule.milestones == [1]
    assert cfg.train.grad_clip == 2.0 and isinstance(cfg.train.grad_clip, float)
    assert cfg.optim.nesterov is True and cfg.tracking.run_name == "x1"
    assert load_config(DEMO, ["train.grad_clip=null"]).train.grad_clip is None


def test_the_papers_cifar_schedule_is_expressible(tmp_path):
    import torch

    from calibexp.optim import OPTIMIZERS, SCHEDULES
    from calibexp.registry import hyperparameters

    child = write(
        tmp_path, "c.yaml", f"_base_: [{DEMO}, {ROOT}/configs/_base_/schedules/cifar_350e.yaml]\n"
    )
    cfg = load_config(child)
    assert cfg.train.epochs == 350 and cfg.train.batch_size == 128
    opt = OPTIMIZERS.build(
        "sgd", [torch.nn.Parameter(torch.zeros(1))], **hyperparameters(cfg.optim)
    )
    sched = SCHEDULES.build("multistep", opt, **hyperparameters(cfg.schedule))
    lrs = []
    for _ in range(350):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == lrs[149] == 0.1
    assert lrs[150] == pytest.approx(0.01) and lrs[249] == pytest.approx(0.01)
    assert lrs[250] == pytest.approx(0.001) and lrs[349] == pytest.approx(0.001)


@pytest.mark.parametrize(
    "override, message",
    [
        ("optim.lrr=0.1", "unknown config key 'optim.lrr' (did you mean 'lr'?)"),
        ("trian.epochs=2", "unknown config key 'trian' (did you mean 'train'?)"),
        ("train.epoch=2", "unknown config key 'train.epoch' (did you mean 'epochs'?)"),
        ("model.widht=3", "unknown config key 'model.widht' (did you mean 'width'?)"),
    ],
)
def test_unknown_key_names_the_nearest_valid_one(override, message):
    with pytest.raises(CalibexpError) as err:
        load_config(DEMO, [override])
    assert message in str(err.value)


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.epochs=abc", "config key 'train.epochs': got 'abc' (str), expected int"),
        ("train.epochs=2.5", "config key 'train.epochs': got 2.5 (float), expected int"),
        ("optim.lr=fast", "config key 'optim.lr': got 'fast' (str), expected float"),
        (
            "schedule.milestones=7",
            "config key 'schedule.milestones': got 7 (int), expected a list of int",
        ),
        ("seed=x", "config key 'seed': got 'x' (str), expected int"),
        (
            "train.grad_clip=big",
            "config key 'train.grad_clip': got 'big' (str), expected null or float",
        ),
    ],
)
def test_wrong_type_names_key_value_and_expected_type(override, message):
    with pytest.raises(CalibexpError) as err:
        load_config(DEMO, [override])
    assert message in str(err.value)


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("train.epochs=0", "config key 'train.epochs': got 0, expected an integer >= 1"),
        ("optim.lr=-1", "config key 'optim.lr': got -1.0, expected > 0"),
        (
            "train.precision=fp16",
            "train.precision': got 'fp16' (str), expected one of auto | fp32 | bf16",
        ),
        ("eval.best_metric=test/nll", "never a test metric"),
        ("device=tpu", "config key 'device': got 'tpu'"),
        ("schedule.milestones=[5,3]", "expected strictly increasing epochs >= 1"),
        ("optim.momentum=-0.5", "config key 'optim.momentum': got -0.5, expected >= 0"),
        ("eval.val_every=0", "config key 'eval.val_every': got 0, expected an integer >= 1"),
        ("eval.diagram_every=-1", "'eval.diagram_every': got -1, expected an integer >= 0"),
        ("eval.diagram_budget=0", "'eval.diagram_budget': got 0.0, expected a fraction > 0"),
        (
            "eval.evolution_epochs=[25]",
            "'eval.evolution_epochs': got [25], expected epochs that draw a val diagram ([0, 1, 2",
        ),
        (
            "eval.calibrators=[temprature]",
            "eval.calibrators: unknown calibrator 'temprature' (did you mean 'temperature'?)",
        ),
        ("eval.calibrators=[]", "expected a non-empty list of distinct calibrator names"),
        ("eval.ood=[svhm]", "eval.ood: unknown evaluation set 'svhm' (did you mean 'svhn'?)"),
        ("eval.ood=[svhn,svhn]", "'eval.ood': got ['svhn', 'svhn'], expected distinct set names"),
    ],
)
def test_out_of_range_values_fail_at_config_time(override, fragment):
    with pytest.raises(CalibexpError) as err:
        load_config(DEMO, [override])
    assert fragment in str(err.value)


def test_base_cycle_is_an_error(tmp_path):
    write(tmp_path, "a.yaml", "_base_: b.yaml\n")
    write(tmp_path, "b.yaml", "_base_: a.yaml\n")
    with pytest.raises(CalibexpError, match=r"_base_ cycle in configs: a.yaml -> b.yaml -> a.yaml"):
        load_config(tmp_path / "a.yaml")


def test_missing_file_and_bad_yaml_and_bad_override(tmp_path):
    with pytest.raises(CalibexpError, match="config file not found: .*nope.yaml"):
        load_config(tmp_path / "nope.yaml")
    bad = write(tmp_path, "bad.yaml", "train: {epochs: [\n")
    with pytest.raises(CalibexpError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(CalibexpError, match="not of the form dotted.key=value"):
        load_config(DEMO, ["train.epochs"])


def test_frozen():
    cfg = load_config(DEMO)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 3  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.optim.lr = 3  # type: ignore[misc]


def test_round_trips_and_flatten():
    cfg = load_config(DEMO, ["train.grad_clip=1.5"])
    assert config_from_dict(to_dict(cfg)) == cfg
    flat = flatten(cfg)
    assert flat["optim.lr"] == "0.05" and flat["schedule.milestones"] == "[12, 16]"
    assert flat["train.grad_clip"] == "1.5" and flat["tracking.run_name"] == "None"
    import yaml

    assert config_from_dict(yaml.safe_load(to_yaml(cfg))) == cfg


def test_run_key_ignores_how_a_run_is_carried_out():
    base = run_key(load_config(DEMO))
    assert (
        run_key(
            load_config(
                DEMO,
                [
                    "device=cpu",
                    "train.progress=false",
                    "tracking.run_name=other",
                    "eval.batch_size=7",
                    "eval.diagram_every=3",
                    "eval.diagram_budget=0.5",
                    "eval.evolution_epochs=[0,3]",
                    "train.compile=true",
                    "train.compile_mode=max-autotune",
                    "optim.fused=true",
                ],
            )
        )
        == base
    )
    assert run_key(load_config(DEMO, ["train.check_syncs=true"])) == base
    # The demo's key before the speed keys existed: runs already in a store keep their key
    # (the registry finds them by it), so a key added to the config that changes nothing
    # computed must be left out of the hash.
    assert base == "4f08116f889d9a07"
    assert run_key(load_config(DEMO, ["optim.lr=0.07"])) != base
    assert run_key(load_config(DEMO, ["seed=1"])) != base


def test_which_epochs_evaluate_and_draw():
    cfg = load_config(DEMO, ["train.epochs=10", "eval.val_every=3", "eval.diagram_every=2"])
    assert cfg.eval.val_epochs(10) == [2, 5, 8, 9]  # every third epoch, and always the last
    assert cfg.eval.diagram_epochs(10) == [2, 8, 9]  # every second of those, and the last
    every = load_config(DEMO, ["train.epochs=5"]).eval
    assert every.val_epochs(5) == every.diagram_epochs(5) == [0, 1, 2, 3, 4]
    assert load_config(DEMO, ["eval.diagram_every=0"]).eval.diagram_epochs(20) == []
