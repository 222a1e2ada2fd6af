"""The step loop never waits on the device: every registered loss and meta-learner trains an
epoch under ``train.check_syncs`` (the CPU stand-in for CUDA's sync debug mode), and a loss that
reads a value back fails with a line naming what and where."""

from __future__ import annotations

import contextlib
import functools
import io
import threading

import pytest
import torch
from tqdm import tqdm

from calibexp import engine
from calibexp.config import load_config
from calibexp.engine import PlainStep, train_one_epoch
from calibexp.execution import HostSyncError, ProgressReadout, no_host_syncs
from calibexp.losses import LOSSES
from calibexp.losses.base import CalibrationLoss
from calibexp.meta.learners import META_LEARNERS
from calibexp.parts import build_parts
from calibexp.seeding import epoch_generator
from tests.support import FAST, ROOT


@pytest.fixture
def shown_bar(monkeypatch) -> io.StringIO:
    """The epoch's progress bar drawn (into a buffer) even though tests have no terminal, so
    its readout runs inside the checked loop."""
    drawn = io.StringIO()
    monkeypatch.setattr(tqdm, "monitor_interval", 0)  # no monitor thread left behind

    def bar(*args, **kwargs):
        return tqdm(*args, **{**kwargs, "disable": False, "file": drawn, "mininterval": 0})

    monkeypatch.setattr(engine, "tqdm", bar)
    return drawn


def one_epoch(parts, *, check_syncs: bool) -> dict[str, float]:
    parts.step.begin_epoch(0, 0.1)
    return train_one_epoch(
        parts.step,
        parts.train_loader.batches(epoch_generator(0, 0, parts.device)),
        steps=len(parts.train_loader),
        progress=True,
        desc="check",
        check_syncs=check_syncs,
    )


@pytest.mark.parametrize("name", LOSSES.names())
def test_every_loss_trains_an_epoch_without_a_host_sync(name, shown_bar):
    parts = build_parts(load_config(ROOT / "configs/demo.yaml", [*FAST, f"loss.name={name}"]))
    metrics = one_epoch(parts, check_syncs=True)  # crop+flip, evidence, diagnostics, the bar
    assert metrics["train/loss"] > 0 and 0 <= metrics["train/acc"] <= 1
    assert "loss=" in shown_bar.getvalue()  # the bar showed figures read without a sync


@pytest.mark.parametrize("learner", META_LEARNERS.names())
def test_every_meta_learner_steps_without_a_host_sync(learner):
    cfg = load_config(
        [ROOT / "configs/demo.yaml", ROOT / "configs/_base_/losses/meta_calibration.yaml"],
        [*FAST, f"meta.name={learner}"],
    )
    metrics = one_epoch(build_parts(cfg), check_syncs=True)
    assert {"meta/dece", "meta/ce"} <= set(metrics)


def test_the_check_changes_nothing_it_watches():
    watched = one_epoch(
        build_parts(load_config(ROOT / "configs/demo.yaml", FAST)), check_syncs=True
    )
    plain = one_epoch(build_parts(load_config(ROOT / "configs/demo.yaml", FAST)), check_syncs=False)
    assert watched == plain


class ReadsBack(CalibrationLoss):
    """Cross-entropy whose evidence reads a value back in one of the usual ways."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how

    def forward(self, logits, targets):
        return torch.nn.functional.cross_entropy(logits, targets)

    def components(self, logits, targets):
        p = logits.softmax(1).amax(1)
        if self.how == "item":
            return {"max": p * p.max().item()}
        if self.how == "if":
            return {"max": p * 2 if (p > 0.5).any() else p}
        if self.how == "mask":
            return {"confident": p[p > 0.5].sum().expand(len(p))}
        if self.how == "tolist":
            return {"max": p * max(p.tolist())}
        if self.how == "constant":
            return {"p": p * torch.as_tensor(2.0, device=p.device)}
        return {"p": p}


def tiny_epoch(loss: CalibrationLoss, check_syncs: bool = True) -> dict[str, float]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    step = PlainStep(
        model,
        loss,
        torch.optim.SGD(model.parameters(), lr=0.1),
        autocast=contextlib.nullcontext(),
        grad_clip=1.0,
        summed=False,
    )
    batches = [(torch.randn(8, 12), torch.randint(0, 3, (8,))) for _ in range(3)]
    return train_one_epoch(
        step, iter(batches), steps=3, progress=False, desc="t", check_syncs=check_syncs
    )


@pytest.mark.parametrize(
    "how, named",
    [
        ("item", r"\.item\(\)"),
        ("if", r"an `if` on a tensor"),
        ("mask", r"boolean mask"),
        ("tolist", r"Tensor\.tolist\(\)"),
        ("constant", r"a tensor made from host data"),
    ],
)
def test_a_loss_that_reads_back_fails_naming_the_line(how, named):
    with pytest.raises(HostSyncError, match=named) as err:
        tiny_epoch(ReadsBack(how))
    message = str(err.value)
    assert "\n" not in message
    assert "tests/execution/test_syncs.py:" in message and "(components)" in message
    assert tiny_epoch(ReadsBack(how), check_syncs=False)["train/loss"] > 0  # unchecked: runs


def test_sync_free_loss_passes_and_the_epoch_end_read_is_outside_the_check():
    metrics = tiny_epoch(ReadsBack("none"))
    assert set(metrics) == {"train/loss", "train/acc", "evidence/p"}


def test_the_watch_is_lifted_after_the_loop():
    with no_host_syncs(torch.device("cpu")):
        pass
    assert torch.ones(2).tolist() == [1.0, 1.0] and torch.ones(()).item() == 1.0
    with pytest.raises(HostSyncError), no_host_syncs(torch.device("cpu")):
        torch.ones(()).item()
    assert torch.zeros(1).numpy().tolist() == [0.0]


def test_only_the_loop_thread_is_watched():
    """The stand-in's tolist/numpy guard is process-wide; a tracking thread converting its own
    tensors while the loop is checked is not the loop."""
    seen = []
    with no_host_syncs(torch.device("cpu")):
        worker = threading.Thread(target=lambda: seen.append(torch.arange(3).tolist()))
        worker.start()
        worker.join()
        with pytest.raises(HostSyncError, match="tolist"):
            torch.arange(3).tolist()
    assert seen == [[0, 1, 2]]


def test_progress_readout_shows_the_running_means_without_a_read():
    readout = ProgressReadout(torch.device("cpu"))
    loss_sum, correct = torch.tensor(6.0), torch.tensor(3.0)
    with no_host_syncs(torch.device("cpu")):
        shown = readout.poll(loss_sum, correct, 4)
    assert shown == (1.5, 0.75)
    shown = readout.poll(torch.tensor(7.0), torch.tensor(4.0), 5)
    assert shown == pytest.approx((1.4, 0.8))


def test_optimiser_step_counts_are_host_state_not_a_sync():
    """Adam keeps its step count on the host and reads it with .item(); that is no sync in a
    CUDA run either, so the stand-in lets a read made inside torch.optim through (any such
    read: the exemption is by where the read is made, not by which tensor)."""
    w = torch.nn.Parameter(torch.ones(3))
    adam = torch.optim.Adam([w], lr=0.1, foreach=False)
    w.grad = torch.ones(3)
    with no_host_syncs(torch.device("cpu")):
        adam.step()
    assert torch.allclose(w.detach(), torch.full((3,), 0.9))
    check = functools.partial(no_host_syncs, torch.device("cpu"))
    with pytest.raises(HostSyncError), check():
        float(w.sum())
