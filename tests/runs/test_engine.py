"""The train / predict loop on CPU."""

from __future__ import annotations

import contextlib

import pytest
import torch

from calibexp.config import load_config
from calibexp.engine import PlainStep, autocast_for, predict, resolve_device, train_one_epoch
from calibexp.errors import CalibexpError
from calibexp.parts import build_parts
from calibexp.seeding import epoch_generator
from tests.support import FAST, ROOT


def parts_for(*overrides: str):
    return build_parts(load_config(ROOT / "configs/demo.yaml", [*FAST, *overrides]))


def one_epoch(parts, epoch: int = 0, grad_clip=None):
    step = PlainStep(
        parts.model,
        parts.loss,
        parts.optimizer,
        autocast=contextlib.nullcontext(),
        grad_clip=grad_clip,
        summed=False,
    )
    return train_one_epoch(
        step,
        parts.train_loader.batches(epoch_generator(0, epoch, parts.device)),
        steps=len(parts.train_loader),
        progress=False,
        desc="test",
    )


@pytest.mark.slow
def test_training_lowers_the_loss():
    parts = parts_for()
    first = one_epoch(parts, 0)
    for epoch in range(1, 3):
        last = one_epoch(parts, epoch)
    assert last["train/loss"] < first["train/loss"] and last["train/acc"] > first["train/acc"]


def test_predict_returns_float32_logits_in_split_order():
    parts = parts_for()
    logits, targets = predict(parts.model, parts.val_loader, contextlib.nullcontext())
    assert torch.equal(targets, parts.data.val.labels)
    assert logits.dtype == torch.float32 and logits.shape == (len(targets), 10)
    x = torch.cat([x for x, _ in parts.val_loader.batches()])
    with torch.no_grad():
        torch.testing.assert_close(logits, parts.model.eval()(x))


def test_gradient_clipping_bounds_the_step():
    parts = parts_for("optim.momentum=0", "optim.weight_decay=0", "optim.lr=1.0")
    before = [p.detach().clone() for p in parts.model.parameters()]
    parts.train_loader.batch_size = len(parts.data.train)  # one step
    one_epoch(parts, grad_clip=0.01)
    step = torch.sqrt(sum(((p - b) ** 2).sum() for p, b in zip(parts.model.parameters(), before)))
    assert step.item() == pytest.approx(0.01, rel=1e-3)  # lr 1 x clipped gradient norm 0.01


def test_device_and_precision_selection():
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto").type in ("cpu", "mps")
        with pytest.raises(CalibexpError, match="device 'cuda' is not available"):
            resolve_device("cuda")
    with pytest.raises(CalibexpError, match="bf16 needs a CUDA device"):
        autocast_for(torch.device("cpu"), "bf16")
    assert isinstance(autocast_for(torch.device("cpu"), "auto"), contextlib.nullcontext)


def test_same_seed_same_weights():
    a, b = parts_for(), parts_for()
    one_epoch(a)
    one_epoch(b)
    for (name, x), y in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(x, y), name


@pytest.mark.parametrize("deterministic", [True, False])
def test_deterministic_switch_is_set_either_way(deterministic):
    try:
        parts_for(f"deterministic={str(deterministic).lower()}")
        assert torch.are_deterministic_algorithms_enabled() is deterministic
        assert torch.backends.cudnn.deterministic is deterministic
    finally:
        torch.use_deterministic_algorithms(False)


def test_predict_under_bf16_autocast_returns_float32_logits_close_to_fp32():
    """Evaluation in bf16 batches (CPU autocast stands in for CUDA's here): the logits come
    back as float32, within bf16's rounding of the fp32 forward."""
    parts = parts_for()
    fp32, _ = predict(parts.model, parts.val_loader, contextlib.nullcontext())
    bf16, targets = predict(
        parts.model, parts.val_loader, torch.autocast("cpu", dtype=torch.bfloat16)
    )
    assert bf16.dtype == torch.float32 and torch.equal(targets, parts.data.val.labels)
    assert not torch.equal(bf16, fp32)  # the forward did run in bf16
    torch.testing.assert_close(bf16, fp32, rtol=0.05, atol=0.05)
