"""The meta-calibration step: each learner's hypergradient against central finite differences
of the post-look-ahead meta-loss, and three full steps against a written-out transcription of
the reference's (tests/support/metacal_reference.py), in float64."""

from __future__ import annotations

import itertools

import pytest
import torch

from calibexp.config import MetaConfig
from calibexp.losses import LOSSES
from calibexp.meta.learners import META_LEARNERS
from calibexp.meta.step import MetaStep, classifier_head, meta_val_batches
from tests.support.metacal_reference import TinyNet, initial_hyper, reference_step

CLASSES, FEATURES, BATCH = 4, 5, 16
LR = 0.1
# calibexp's name -> the reference's --meta_calibration
KINDS = {
    "label_smoothing_scalar": "scalar_label_smoothing",
    "label_smoothing_vector": "vector_label_smoothing",
    "label_smoothing_nonuniform": "non_uniform_label_smoothing",
    "l2_head": "learnable_l2",
}


def test_every_registered_learner_is_checked_here():
    assert set(META_LEARNERS.names()) == set(KINDS)


def batches(seed: int, n: int, size: int = BATCH) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [
        (
            torch.randn(size, FEATURES, generator=g, dtype=torch.float64),
            torch.randint(0, CLASSES, (size,), generator=g),
        )
        for _ in range(n)
    ]


def meta_step_for(name: str, model: TinyNet, domains: int = 1, **switches) -> MetaStep:
    """The reference's settings: summed losses, clip 2, SGD 0.1 / 0.9 / 5e-4, Adam 1e-3."""
    _, head = classifier_head(model)
    learner = META_LEARNERS.build(
        name, CLASSES, [head.weight.shape, head.bias.shape], domains
    ).double()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9, weight_decay=5e-4)
    step = MetaStep(
        model,
        LOSSES.build("ce"),
        optimizer,
        learner,
        None,  # meta-val batches are handed in below, not drawn from a loader
        MetaConfig(name=name, **switches),
        seed=0,
        autocast=torch.autocast("cpu", enabled=False),
        grad_clip=2.0,
        summed=True,
    )
    step.lr = LR
    return step


@pytest.mark.parametrize("name, domains", [*((n, 1) for n in KINDS), ("label_smoothing_vector", 3)])
def test_hypergradient_equals_a_central_difference(name, domains):
    torch.manual_seed(0)
    model = TinyNet(FEATURES, 8, CLASSES).double()
    step = meta_step_for(name, model, domains)
    hyper = list(step.learner.parameters())
    with torch.no_grad():  # an interior point: every clamp inactive, every term alive
        for p in hyper:
            p.copy_(0.05 + 0.3 * torch.rand_like(p))
    (x, y), (xv, yv) = batches(1, 2)
    d = torch.arange(BATCH) % domains if domains > 1 else None

    def meta_loss() -> torch.Tensor:
        return step.look_ahead_objective(model(x), y, d, (xv, yv))["loss"]

    analytic = torch.autograd.grad(meta_loss(), hyper)
    h = 1e-6
    for p, grad in zip(hyper, analytic):
        flat, numeric = p.data.view(-1), torch.zeros(p.numel(), dtype=torch.float64)
        for i in range(p.numel()):
            kept = flat[i].item()
            flat[i] = kept + h
            plus = meta_loss().item()
            flat[i] = kept - h
            minus = meta_loss().item()
            flat[i] = kept
            numeric[i] = (plus - minus) / (2 * h)
        assert numeric.abs().max() > 1e-3  # the meta-loss does depend on these
        torch.testing.assert_close(grad.view(-1), numeric, rtol=1e-4, atol=1e-9)


def three_steps(name: str, **switches) -> tuple[TinyNet, MetaStep, TinyNet, list]:
    """Ours and the reference's, from the same weights over the same batches; the meta-val
    batches replayed by ``itertools.cycle`` as the reference's ``zip(train, cycle(meta))``."""
    torch.manual_seed(3)
    ours = TinyNet(FEATURES, 8, CLASSES).double()
    theirs = TinyNet(FEATURES, 8, CLASSES, fast=True).double()
    theirs.load_state_dict(ours.state_dict())
    train, meta = batches(5, 3), batches(6, 2, size=12)

    hyper = initial_hyper(KINDS[name], theirs.fc, CLASSES)
    their_opt = torch.optim.SGD(theirs.parameters(), lr=LR, momentum=0.9, weight_decay=5e-4)
    meta_opt = torch.optim.Adam(hyper, lr=1e-3)
    for batch, meta_batch in zip(train, itertools.cycle(meta)):
        reference_step(KINDS[name], theirs, their_opt, meta_opt, hyper, LR, batch, meta_batch)

    step = meta_step_for(name, ours, **switches)
    step.batches = itertools.cycle(meta)
    for x, y in train:
        step.step(x, y)
    return ours, step, theirs, hyper


@pytest.mark.parametrize("name", KINDS)
def test_three_meta_steps_equal_the_references(name):
    ours, step, theirs, hyper = three_steps(name)
    for key, value in theirs.state_dict().items():  # weights and BatchNorm statistics
        torch.testing.assert_close(ours.state_dict()[key], value, rtol=0, atol=1e-6, msg=key)
    learned = [p.detach().view(-1) for p in step.learner.parameters()]
    expected = [p.detach().view(-1) for p in hyper]
    assert max(float(p.abs().max()) for p in expected) > 1e-3  # the hyper-parameters moved
    for got, want in zip(learned, expected):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_without_the_leak_the_model_steps_on_its_training_loss_alone():
    """``meta.leak_to_model=false``: the meta-objective's gradient no longer reaches the model,
    so its weights leave the reference's."""
    ours, step, theirs, _ = three_steps("label_smoothing_vector", leak_to_model=False)
    gap = max((ours.state_dict()[k] - v).abs().max() for k, v in theirs.state_dict().items())
    assert gap > 1e-4


def test_batchnorm_statistics_from_meta_val_are_a_switch():
    """The reference's meta-val forward moves BatchNorm's running statistics; with
    ``meta.bn_from_meta_val=false`` they are those of the training batches alone."""
    torch.manual_seed(3)
    model = TinyNet(FEATURES, 8, CLASSES).double()
    step = meta_step_for("label_smoothing_scalar", model, bn_from_meta_val=False)
    bn = model.body[1]
    expected = bn.running_mean.clone()
    (x, y), (xv, yv) = batches(5, 1)[0], batches(6, 1)[0]
    with torch.no_grad():
        expected = 0.9 * expected + 0.1 * model.body[0](x).mean(dim=0)
    step.batches = iter([(xv, yv)])
    step.step(x, y)
    torch.testing.assert_close(bn.running_mean, expected)
    assert int(bn.num_batches_tracked) == 1

    torch.manual_seed(3)
    model2 = TinyNet(FEATURES, 8, CLASSES).double()
    step2 = meta_step_for("label_smoothing_scalar", model2)  # the reference's: both batches
    step2.batches = iter([(xv, yv)])
    step2.step(x, y)
    assert int(model2.body[1].num_batches_tracked) == 2


def test_cycle_replays_the_first_pass_and_reshuffle_draws_anew():
    from calibexp.data.bundle import Split
    from calibexp.data.loader import DeviceLoader

    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1)
    loader = DeviceLoader(
        Split(images, torch.arange(10)), 4, torch.device("cpu"), (0.0,), (1 / 255,)
    )

    def labels(replay: str) -> list[list[int]]:
        stream = meta_val_batches(loader, torch.Generator().manual_seed(0), replay)
        return [b[1].tolist() for b in itertools.islice(stream, 6)]

    cycled = labels("cycle")
    assert cycled[3:] == cycled[:3]  # 3 batches a pass (4 + 4 + 2), then the same 3 again
    assert sorted(sum(cycled[:3], [])) == list(range(10))
    fresh = labels("reshuffle")
    assert fresh[:3] == cycled[:3] and fresh[3:] != fresh[:3]
    assert sorted(sum(fresh[3:], [])) == list(range(10))


@pytest.mark.parametrize(
    "name, params",
    [("small_cnn", {}), ("cifar_resnet20", {}), ("wrn26_10", {}), ("timm", {"arch": "resnet18"})],
)
def test_the_head_found_is_the_layer_that_makes_the_logits(name, params):
    from calibexp.models import BACKBONES

    model = BACKBONES.build(name, 10, 3, **params).eval()
    _, head = classifier_head(model)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(torch.arange(10.0))
        logits = model(torch.randn(2, 3, 32, 32))
    assert torch.equal(logits, torch.arange(10.0).expand(2, 10))


def test_a_model_without_a_final_linear_layer_is_refused():
    from calibexp.errors import CalibexpError

    with pytest.raises(CalibexpError, match="an nn.Linear with a bias, which Sequential"):
        classifier_head(torch.nn.Sequential(torch.nn.Conv2d(3, 10, 1), torch.nn.Flatten()))
