"""``protocol: <name>`` merges one reference's training settings (calibexp/protocols.py), and the
paper cells carry the protocol their loss's numbers were published with: what each setting is,
checked against the reference behaviour written out in ../shared/reference/audit.md §2 and
calibration.md §6 (torrvision ``train.py``, SA-FCL's configs, meta-calibration's split)."""

from __future__ import annotations

import pytest
import torch

from calibexp.config import load_config, to_dict
from calibexp.errors import CalibexpError
from calibexp.optim import SCHEDULES
from calibexp.parts import step_before_training
from calibexp.protocols import GOVERNED, PROTOCOLS
from tests.support import ROOT

DEMO = str(ROOT / "configs/demo.yaml")
CELL = str(ROOT / "configs") + "/{}.yaml"


def governed(cfg) -> dict:
    as_dict = to_dict(cfg)
    return {f"{s}.{k}": as_dict[s][k] for s, keys in GOVERNED.items() for k in keys}


@pytest.mark.parametrize("name", list(PROTOCOLS))
def test_every_protocol_sets_every_governed_key(name):
    settings = PROTOCOLS[name].settings
    for section, keys in GOVERNED.items():
        if name == "calibexp" and section == "optim":
            assert section not in settings  # calibexp keeps the config's own optimiser
            continue
        assert set(keys) <= set(settings[section]), (name, section)


@pytest.mark.parametrize("first", list(PROTOCOLS))
@pytest.mark.parametrize("second", list(PROTOCOLS))
def test_a_protocol_named_after_another_leaves_nothing_of_the_first(first, second):
    alone = governed(load_config(DEMO, [f"protocol={second}"]))
    after = governed(load_config(DEMO, [f"protocol={first}", f"protocol={second}"]))
    if second == "calibexp":  # the optimiser stays what the config (or the first) had
        alone = {k: v for k, v in alone.items() if not k.startswith("optim.")}
        after = {k: v for k, v in after.items() if not k.startswith("optim.")}
    assert after == alone


def test_torrvision_is_torrvisions_train_py():
    cfg = load_config(DEMO, ["protocol=torrvision"])
    assert cfg.protocol == "torrvision"
    assert (cfg.train.loss_reduction, cfg.train.grad_clip, cfg.train.lr_step) == (
        "sum",
        2.0,
        "epoch_start",
    )
    assert (cfg.optim.lr, cfg.optim.momentum, cfg.optim.weight_decay, cfg.optim.nesterov) == (
        0.1,
        0.9,
        5e-4,
        False,
    )
    assert cfg.eval.test_checkpoint == "last"  # evaluate.py loads the final *_350.model
    assert cfg.eval.calibrators[0] == "temperature_grid_ece"  # the "(T)" heads the headline
    assert (cfg.eval.best_metric, cfg.eval.best_mode) == ("val/acc", "max")
    assert cfg.data.meta_val_size == 0


def test_metacal_takes_the_best_val_accuracy_weights_and_a_meta_val_as_large_as_val():
    cfg = load_config(DEMO, ["protocol=metacal"])
    assert (cfg.train.loss_reduction, cfg.train.grad_clip, cfg.train.lr_step) == (
        "sum",
        2.0,
        "epoch_start",
    )
    assert (cfg.eval.test_checkpoint, cfg.eval.best_metric, cfg.eval.best_mode) == (
        "best",
        "val/acc",
        "max",
    )
    assert cfg.data.meta_val_size == cfg.data.val_size == 450


def test_safcl_is_mean_reduced_unclipped_with_nesterov_and_its_label_smoothing():
    cfg = load_config(DEMO, ["loss.name=label_smoothing", "protocol=safcl"])
    assert (cfg.train.loss_reduction, cfg.train.grad_clip, cfg.train.lr_step) == (
        "mean",
        None,
        "epoch_end",
    )
    assert cfg.optim.nesterov is True and cfg.optim.lr == 0.1
    assert cfg.loss.spread == "others"  # 1 - eps on y, eps/(K-1) on each other class
    # never the repository's best.pt, which it picks by *test* ECE
    assert cfg.eval.test_checkpoint == "last" and cfg.eval.best_metric.startswith("val/")


def test_keys_written_after_the_protocol_win(tmp_path):
    cfg = load_config(DEMO, ["protocol=torrvision", "train.grad_clip=5", "optim.lr=0.02"])
    assert (cfg.train.grad_clip, cfg.optim.lr, cfg.train.loss_reduction) == (5.0, 0.02, "sum")
    # in a file: between its _base_ files and its own keys
    own = tmp_path / "mine.yaml"
    own.write_text(f"_base_: {DEMO}\nprotocol: torrvision\ntrain: {{grad_clip: 1.0}}\n")
    cfg = load_config(own)
    assert (cfg.train.grad_clip, cfg.train.loss_reduction, cfg.optim.lr) == (1.0, "sum", 0.1)
    # an override before the protocol is overwritten by it
    cfg = load_config(DEMO, ["train.grad_clip=5", "protocol=torrvision"])
    assert cfg.train.grad_clip == 2.0


def test_an_unknown_protocol_is_one_line_naming_the_protocols():
    with pytest.raises(CalibexpError) as err:
        load_config(DEMO, ["protocol=torvision"])
    message = str(err.value)
    assert "\n" not in message and "'torvision'" in message
    assert "calibexp | torrvision | metacal | safcl" in message


@pytest.mark.parametrize(
    "cell, protocol",
    [
        ("cifar10/resnet50/ce", "torrvision"),
        ("cifar10/resnet50/wd_ce", "torrvision"),
        ("cifar10/resnet50/focal", "torrvision"),
        ("cifar10/resnet110/dual_focal", "torrvision"),
        ("cifar100/resnet50/mmce", "torrvision"),
        ("cifar100/wrn26_10/brier", "torrvision"),
        ("cifar10/resnet50/label_smoothing", "torrvision"),
        ("cifar10/resnet50/label_smooth", "safcl"),
        ("cifar10/resnet50/fcl_ungated", "safcl"),
        ("cifar100/densenet121/safcl", "safcl"),
        ("cifar10/resnet50/safcl_nostop", "safcl"),
        ("cifar10/resnet50/dece", "calibexp"),
        ("digits/small_cnn/focal", "calibexp"),
        ("digits/small_cnn/safcl", "calibexp"),
    ],
)
def test_paper_cells_use_the_protocol_their_numbers_were_published_with(cell, protocol):
    cfg = load_config(CELL.format(cell))
    assert cfg.protocol == protocol
    expected = load_config(CELL.format(cell), [f"protocol={protocol}"])
    assert governed(cfg) == governed(expected)  # the cell holds all of the protocol's settings
    if protocol != "calibexp":
        assert cfg.optim.lr == 0.1 and cfg.schedule.milestones == [150, 250]
    if cell.startswith("cifar100"):
        assert cfg.data.normalisation == "own"  # torrvision's mismatch only when asked for


def test_tiny_imagenet_cells_under_torrvision_use_its_scripts_batch_head_and_brier_lr():
    focal = load_config(CELL.format("tiny_imagenet/resnet50/focal"))
    assert focal.protocol == "torrvision" and focal.train.batch_size == 64
    assert focal.model.head_pool == 2 and focal.optim.lr == 0.1
    assert load_config(CELL.format("tiny_imagenet/resnet50/brier")).optim.lr == 0.035
    safcl = load_config(CELL.format("tiny_imagenet/resnet50/safcl"))
    assert safcl.protocol == "safcl" and safcl.train.batch_size == 128
    assert safcl.model.head_pool == 1  # SA-FCL: torchvision's head with the CIFAR stem


def lr_per_epoch(lr_step: str, epochs: int) -> list[float]:
    """The LR each epoch trains at, as fit() steps the schedule (after each epoch) with the
    protocol's step before the first."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    scheduler = SCHEDULES.build("multistep", optimizer, milestones=[150, 250], gamma=0.1)
    if lr_step == "epoch_start":
        step_before_training(scheduler)
    rates = []
    for _ in range(epochs):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def test_the_lr_drops_where_each_protocol_puts_it():
    # torrvision train.py: scheduler.step() at the start of each epoch -> drops at 149 and 249
    theirs = lr_per_epoch("epoch_start", 350)
    assert theirs[148] == pytest.approx(0.1) and theirs[149] == pytest.approx(0.01)
    assert theirs[248] == pytest.approx(0.01) and theirs[249] == pytest.approx(0.001)
    assert theirs[0] == pytest.approx(0.1) and theirs[349] == pytest.approx(0.001)
    # calibexp (and SA-FCL): after each epoch -> drops at 150 and 250
    ours = lr_per_epoch("epoch_end", 350)
    assert ours[149] == pytest.approx(0.1) and ours[150] == pytest.approx(0.01)
    assert ours[249] == pytest.approx(0.01) and ours[250] == pytest.approx(0.001)


def test_cosine_is_the_safcl_repositorys_lr_per_epoch():
    """SA-FCL src/utils/lr.py sets lr = 0.1 · 0.5 · (1 + cos(π · ep / 100)) at the start of
    epoch ep; calibexp's cosine, stepped after each epoch, trains epoch ep at the same lr."""
    import math

    cfg = load_config(
        [DEMO, str(ROOT / "configs/_base_/schedules/safcl_repo_100e_cosine.yaml")],
        ["protocol=safcl"],
    )
    assert (cfg.schedule.name, cfg.schedule.epochs, cfg.train.epochs) == ("cosine", 100, 100)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=cfg.optim.lr)
    scheduler = SCHEDULES.build("cosine", optimizer, epochs=cfg.schedule.epochs)
    for epoch in range(100):
        expected = 0.1 * 0.5 * (1 + math.cos(math.pi * epoch / 100))
        assert optimizer.param_groups[0]["lr"] == pytest.approx(expected, rel=1e-9, abs=1e-12)
        optimizer.step()
        scheduler.step()
    with pytest.raises(CalibexpError, match=r"schedule.epochs': got 0"):
        load_config(DEMO, ["schedule.name=cosine"])


@pytest.mark.parametrize(
    "cell, epochs", [("cifar10/wrn26_10/brier", 550), ("cifar100/resnet110/brier", 430)]
)
def test_torrvisions_longer_brier_runs(cell, epochs):
    """torrvision's train scripts run these two Brier cells longer (-e 550, -e 430), and its
    evaluate scripts load those final weights; the milestones stay at 150 and 250."""
    cfg = load_config(CELL.format(cell))
    assert (cfg.train.epochs, cfg.schedule.milestones, cfg.protocol) == (
        epochs,
        [150, 250],
        "torrvision",
    )
