"""The meta section: the reference README's run as a paper cell, and what a meta run refuses
before it starts."""

from __future__ import annotations

import pytest

from calibexp.config import load_config, run_key
from calibexp.errors import CalibexpError
from tests.support import ROOT

DEMO = ROOT / "configs/demo.yaml"
META_DEMO = ROOT / "configs/digits/small_cnn/meta_calibration.yaml"


def test_the_reference_readme_run_is_the_cifar10_resnet18_cell():
    cfg = load_config(ROOT / "configs/cifar10/resnet18/meta_calibration.yaml")
    assert (cfg.protocol, cfg.meta.name, cfg.loss.name) == (
        "metacal",
        "label_smoothing_nonuniform",
        "ce",
    )
    assert (cfg.model.name, cfg.model.cifar_stem) == ("resnet18", True)
    assert (cfg.data.split, cfg.data.val_size, cfg.data.meta_val_size) == ("reference", 5000, 5000)
    assert (cfg.train.loss_reduction, cfg.train.grad_clip, cfg.train.epochs) == ("sum", 2.0, 350)
    assert (cfg.eval.test_checkpoint, cfg.eval.best_metric) == ("best", "val/acc")
    assert (cfg.meta.lr, cfg.meta.beta, cfg.meta.bins, cfg.meta.t_a, cfg.meta.t_b) == (
        1e-3,
        0.5,
        15,
        100.0,
        0.01,
    )
    assert cfg.meta.leak_to_model and cfg.meta.bn_from_meta_val and cfg.meta.replay == "cycle"


def test_the_digits_cell_holds_meta_val_out_as_large_as_val():
    cfg = load_config(META_DEMO)
    assert (cfg.protocol, cfg.data.val_size, cfg.data.meta_val_size) == ("calibexp", 450, 450)


def test_a_plain_runs_key_leaves_the_meta_section_out():
    plain = load_config(DEMO)
    assert run_key(plain) == "4f08116f889d9a07"  # the demo's key before meta existed (f2a28dc)
    assert run_key(plain) == run_key(load_config(DEMO, ["meta.lr=0.5"]))  # not a meta run
    meta = load_config(META_DEMO)
    assert run_key(meta) != run_key(load_config(META_DEMO, ["meta.lr=0.5"]))


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["meta.name=label_smoothing"], "meta.name: unknown meta-learner 'label_smoothing'"),
        (
            ["loss.name=focal"],
            "meta.name=label_smoothing_nonuniform trains on its own label-smoothed "
            "cross-entropy, so loss.name=focal would be ignored; set loss.name=ce",
        ),
        (
            ["meta.name=label_smoothing_scalar", "meta.per_domain=true"],
            "meta.per_domain=true needs meta.name=label_smoothing_vector",
        ),
        (["data.meta_val_size=0"], "learns on a meta-val split, but data.meta_val_size is 0"),
        (["meta.lr=0"], "meta.lr"),
        (["meta.replay=shuffle"], "expected one of cycle | reshuffle"),
    ],
)
def test_a_meta_run_refuses_what_cannot_run(overrides, message):
    with pytest.raises(CalibexpError) as err:
        load_config(META_DEMO, overrides)
    assert message in str(err.value)


def test_l2_head_adds_to_any_loss():
    cfg = load_config(META_DEMO, ["meta.name=l2_head", "loss.name=focal"])
    assert (cfg.meta.name, cfg.loss.name) == ("l2_head", "focal")


def test_one_vector_per_domain_needs_a_dataset_of_domains():
    from calibexp.parts import build_parts

    cfg = load_config(
        ROOT / "configs/demo_rotated_digits.yaml", ["data.name=digits", "data.meta_val_size=450"]
    )
    with pytest.raises(CalibexpError, match="needs a dataset of several domains; digits has one"):
        build_parts(cfg)


@pytest.mark.parametrize(
    "train_angles, rows",
    [([0, 15, 30, 45, 60], [0, 1, 2, 3, 4, -1]), ([0, 30, 75], [0, -1, 1, -1, -1, 2])],
)
def test_one_vector_per_seen_domain_and_each_domain_its_row(train_angles, rows):
    from calibexp.parts import build_parts

    overrides = [f"data.train_angles={train_angles}", "data.val_size=100", "data.test_size=100"]
    parts = build_parts(load_config(ROOT / "configs/demo_rotated_digits.yaml", overrides))
    assert parts.step.domain_rows.tolist() == rows
    assert parts.step.learner.eps.shape == (len(train_angles), 10)
    assert parts.step.seen_domains == tuple(f"rot{a}" for a in train_angles)
