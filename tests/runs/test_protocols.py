"""``protocol: torrvision`` trains torrvision's problem: ``fit`` under the protocol against
torrvision's training loop written out here (torrvision/focal_calibration ``train.py`` and
``train_utils.py``: ``scheduler.step()`` at the start of each epoch, the loss summed over the
batch, ``clip_grad_norm(model.parameters(), 2)``, SGD 0.1 / 0.9 / 5e-4 without Nesterov), three
SGD steps (three epochs of one batch, the LR dropping after the first under the reference's
scheduler order) with parameters equal to 1e-6, for CE, focal, Brier and MMCE."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from calibexp.config import load_config, with_overrides
from calibexp.parts import build_parts
from calibexp.seeding import epoch_generator
from calibexp.tracking.recorder import NoRecorder
from calibexp.training import BestSoFar, fit
from tests.support import ROOT

GAMMA, LAMDA = 3.0, 2.0


def torrvision_ce(logits, labels):  # Losses/loss.py::cross_entropy
    return F.cross_entropy(logits, labels, reduction="sum")


def torrvision_focal(logits, labels):  # Losses/focal_loss.py::FocalLoss(size_average=False)
    logpt = F.log_softmax(logits, dim=1).gather(1, labels.view(-1, 1)).view(-1)
    return (-1 * (1 - logpt.exp()) ** GAMMA * logpt).sum()


def torrvision_brier(logits, labels):  # Losses/brier_score.py: a batch mean in either mode
    one_hot = torch.zeros_like(logits).scatter_(1, labels.view(-1, 1), 1)
    return ((one_hot - F.softmax(logits, dim=1)) ** 2).sum() / float(logits.shape[0])


def torrvision_mmce_weighted(logits, labels):  # Losses/mmce.py::MMCE_weighted
    probs, predicted = F.softmax(logits, dim=1).max(dim=1)
    correct = (predicted == labels).float()
    if correct.sum() == 0 or correct.sum() == len(labels):
        return torch.zeros(())
    r_c, r_w = probs[correct == 1], probs[correct == 0]

    def kernel(a, b):
        return torch.exp(-1.0 * torch.abs(a[:, None] - b[None, :]) / 0.4)

    cc = torch.mean(kernel(r_c, r_c) * torch.outer(1 - r_c, 1 - r_c))
    ww = torch.mean(kernel(r_w, r_w) * torch.outer(r_w, r_w))
    cw = torch.mean(kernel(r_c, r_w) * torch.outer(1 - r_c, r_w))
    m, n = correct.sum(), (1 - correct).sum()
    error = cc / (m * m + 1e-5) + ww / (n * n + 1e-5) - 2.0 * cw / (m * n + 1e-5)
    return torch.sqrt(error + 1e-10)


def torrvision_mmce(logits, labels):  # train_utils.py: len(data) * (CE + lamda * MMCE_w)
    return len(labels) * (
        F.cross_entropy(logits, labels) + LAMDA * torrvision_mmce_weighted(logits, labels)
    )


CASES = {
    "ce": ([], torrvision_ce),
    "focal": ([f"loss.gamma={GAMMA}"], torrvision_focal),
    "brier": ([], torrvision_brier),
    "mmce": ([f"loss.lam={LAMDA}", "loss.pair_reduction=mean"], torrvision_mmce),
}


def protocol_config(loss: str, extra: list[str]):
    # 97 training digits in one batch: each epoch is one SGD step; milestone 2 drops the LR
    # before epoch 1 under the references' order (before epoch 2 under calibexp's).
    return load_config(
        [str(ROOT / "configs/demo.yaml"), str(ROOT / f"configs/_base_/losses/{loss}.yaml")],
        [
            "protocol=torrvision",
            *extra,
            "data.val_size=850",
            "data.test_size=850",
            "train.batch_size=128",
            "train.epochs=3",
            "schedule.milestones=[2]",
            "device=cpu",
            "train.progress=false",
            "eval.diagram_every=0",
        ],
    )


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step")  # the reference's order
@pytest.mark.parametrize("loss", list(CASES))
def test_three_steps_equal_torrvisions_loop(loss):
    extra, reference_loss = CASES[loss]
    cfg = protocol_config(loss, extra)
    assert (cfg.train.loss_reduction, cfg.train.grad_clip, cfg.train.lr_step) == (
        "sum",
        2.0,
        "epoch_start",
    )
    ours = build_parts(cfg)
    fit(ours, NoRecorder(), 0, BestSoFar("min"))

    theirs = build_parts(cfg)  # the same seed: the same initial weights and data
    model = theirs.model
    optimizer = torch.optim.SGD(
        model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=False
    )
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[2], gamma=0.1)
    lrs = []
    for epoch in range(3):
        scheduler.step()  # torrvision train.py: at the start of each epoch
        lrs.append(optimizer.param_groups[0]["lr"])
        model.train()
        for data, labels in theirs.train_loader.batches(
            epoch_generator(cfg.seed, epoch, theirs.device)
        ):
            optimizer.zero_grad()
            loss_value = reference_loss(model(data), labels)
            loss_value.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 2)
            optimizer.step()
    assert lrs == pytest.approx([0.1, 0.01, 0.01])
    for (name, a), b in zip(ours.model.named_parameters(), model.parameters()):
        assert torch.allclose(a, b, rtol=0, atol=1e-6), (name, (a - b).abs().max().item())
    moved = max(
        (a - b).abs().max().item()
        for a, b in zip(ours.model.parameters(), build_parts(cfg).model.parameters())
    )
    assert moved > 1e-3  # the three steps did train


def test_calibexp_protocol_is_a_different_problem():
    """Without the protocol (mean loss, no clip) the same three steps end elsewhere."""
    cfg = protocol_config("ce", [])
    plain = load_config(
        str(ROOT / "configs/demo.yaml"),
        [
            "data.val_size=850",
            "data.test_size=850",
            "train.batch_size=128",
            "train.epochs=3",
            "schedule.milestones=[2]",
            "optim.lr=0.1",
            "device=cpu",
            "train.progress=false",
            "eval.diagram_every=0",
        ],
    )
    a, b = build_parts(cfg), build_parts(plain)
    fit(a, NoRecorder(), 0, BestSoFar("min"))
    fit(b, NoRecorder(), 0, BestSoFar("min"))
    gap = max(
        (x - y).abs().max().item() for x, y in zip(a.model.parameters(), b.model.parameters())
    )
    assert gap > 1e-3  # 4.1e-3 measured, 4,000 times the tolerance of the equality above


def test_mmce_default_is_torrvisions_value_at_lambda_2():
    """The registered default (and the base config) is torrvision's MMCE_w scale at λ = 2."""
    from calibexp.losses import LOSSES

    generator = torch.Generator().manual_seed(3)
    logits = 3 * torch.randn(128, 10, generator=generator)
    labels = torch.where(
        torch.rand(128, generator=generator) < 0.8,
        logits.argmax(dim=1),
        torch.randint(0, 10, (128,), generator=generator),
    )
    expected = torrvision_mmce(logits, labels) / len(labels)
    default = LOSSES.build("mmce")
    assert default(logits, labels).item() == pytest.approx(expected.item(), rel=1e-6)
    from_file = load_config(ROOT / "configs/demo.yaml", ["loss.name=mmce"]).loss
    assert from_file.pair_reduction == "mean" and from_file.lam == 2.0


def test_sum_and_clip_equal_the_mean_with_lr_and_clip_and_decay_rescaled():
    """The README's equivalence: summed CE with clip 2, lr 0.1, weight decay 5e-4 takes the same
    SGD-momentum steps as the batch mean with clip 2/B, lr 0.1·B, weight decay 5e-4/B (B = 97,
    the one batch of each epoch here); a learning rate scaled alone does not."""
    summed = protocol_config("ce", [])
    batch = 97
    rescaled = [
        "train.loss_reduction=mean",
        f"train.grad_clip={2 / batch!r}",
        f"optim.lr={0.1 * batch!r}",
        f"optim.weight_decay={5e-4 / batch!r}",
    ]
    mean = with_overrides(summed, rescaled)
    lr_only = with_overrides(summed, ["train.loss_reduction=mean", f"optim.lr={0.1 * batch!r}"])
    runs = {}
    for name, cfg in (("summed", summed), ("mean", mean), ("lr_only", lr_only)):
        runs[name] = build_parts(cfg)
        assert len(runs[name].data.train.labels) == batch
        fit(runs[name], NoRecorder(), 0, BestSoFar("min"))

    def gap(a: str, b: str) -> float:
        pairs = zip(runs[a].model.parameters(), runs[b].model.parameters())
        return max((x - y).abs().max().item() for x, y in pairs)

    assert gap("summed", "mean") < 1e-6  # 6e-8 measured (float32)
    assert gap("summed", "lr_only") > 1e-2  # 0.61 measured


def test_a_metacal_run_logs_its_meta_val_drops_the_lr_early_and_tests_the_best_val_accuracy(
    tracking_store, tmp_path
):
    """A real run under ``protocol=metacal``, read back through MlflowClient: splits.npz holds
    meta-val (as large as val, out of train), the LR drops one epoch before its milestone, and
    test is evaluated on best.pt, the epoch of the highest val accuracy."""
    from mlflow.tracking import MlflowClient

    from calibexp.engine import predict
    from calibexp.run import run_experiment
    from calibexp.tracking.checkpoints import BEST, load_checkpoint
    from tests.support import FAST

    cfg = load_config(
        ROOT / "configs/demo.yaml",
        [*FAST, "protocol=metacal", "train.epochs=4", "schedule.milestones=[2]", "device=cpu"],
    )
    run_id = run_experiment(cfg).run_id
    client = MlflowClient(tracking_store)
    client.download_artifacts(run_id, "splits.npz", str(tmp_path))
    client.download_artifacts(run_id, "logits/test.npz", str(tmp_path))
    with np.load(tmp_path / "splits.npz") as stored:
        splits = {name: stored[name] for name in stored.files}
    assert {name: len(ix) for name, ix in splits.items()} == {
        "train": 447,
        "val": 450,
        "meta_val": 450,
        "test": 450,
    }
    assert sorted(np.concatenate(list(splits.values())).tolist()) == list(range(1797))

    lrs = [m.value for m in sorted(client.get_metric_history(run_id, "lr"), key=lambda m: m.step)]
    assert lrs == pytest.approx([0.1, 0.01, 0.01, 0.01])  # milestone 2, stepped at epoch start

    history = sorted(client.get_metric_history(run_id, "val/acc"), key=lambda m: m.step)
    accuracies = [m.value for m in history]
    best = load_checkpoint(client, run_id, BEST)
    assert best["epoch"] == accuracies.index(max(accuracies))
    parts = build_parts(cfg)
    parts.model.load_state_dict(best["model"])
    logits, _ = predict(parts.model, parts.test_loader, parts.autocast)
    with np.load(tmp_path / "test.npz") as logged:
        assert np.allclose(logged["logits"], logits.numpy(), rtol=0, atol=1e-5)


def test_a_resumed_torrvision_run_keeps_the_schedules_order():
    """The step before the first epoch is in the scheduler's state: a run resumed from its
    epoch-2 checkpoint trains epochs 2-3 at the same LR and ends at the same weights as one
    trained through (milestone 2 reached before epoch 1)."""
    from dataclasses import asdict

    from calibexp.seeding import rng_state
    from calibexp.training import restore

    through_cfg = protocol_config("ce", ["train.epochs=4"])
    through = build_parts(through_cfg)
    fit(through, NoRecorder(), 0, BestSoFar("min"))

    first = build_parts(with_overrides(through_cfg, ["train.epochs=2"]))
    fit(first, NoRecorder(), 0, BestSoFar("min"))
    state = {
        "model": first.model.state_dict(),
        "optimizer": first.optimizer.state_dict(),
        "scheduler": first.scheduler.state_dict(),
        "rng": rng_state(),
        "epoch": 1,
        "best": asdict(BestSoFar("min")),
    }
    resumed = build_parts(through_cfg)
    start, best = restore(resumed, state)
    assert start == 2 and resumed.optimizer.param_groups[0]["lr"] == pytest.approx(0.01)
    fit(resumed, NoRecorder(), start, best)
    for a, b in zip(through.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)
