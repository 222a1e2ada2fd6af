"""calibexp.reports.published: which published method a run's params are, and its numbers
(Mukhoti et al., NeurIPS 2020; CIFAR-10 from the README of torrvision/focal_calibration)."""

from __future__ import annotations

import pytest

from calibexp.reports.published import Published, method_of, published_for

PAPER = {"protocol": "torrvision", "train.epochs": "350"}  # the paper's training


def params(loss: str, meta: str = "none", **extra: str) -> dict[str, str]:
    """Flattened params as MLflow logs them (every value a string), trained as the paper did."""
    return {"loss.name": loss, "meta.name": meta, **PAPER,
            **{f"loss.{k}": v for k, v in extra.items()}}  # fmt: skip


@pytest.mark.parametrize(
    "run, method",
    [
        (params("ce"), "ce"),
        (params("brier"), "brier"),
        (params("flsd53", gammas="[5.0, 3.0, 3.0]", thresholds="[0.2, 0.5]"), "flsd-53"),
        (params("flsd53", gammas="[5.0, 3.0, 2.0]", thresholds="[0.2, 0.5]"), None),  # FLSD-532
        (params("flsd53"), None),  # no schedule logged
        (params("focal", gamma="3.0"), "fl-3"),
        (params("focal", gamma="3"), "fl-3"),
        (params("focal", gamma="2.0"), None),
        (params("focal"), None),  # no gamma logged: not the paper's FL-3
        (params("label_smoothing", smoothing="0.05"), "ls-0.05"),
        (params("label_smoothing", smoothing="0.1"), None),
        (params("mmce", lam="2.0", pair_reduction="mean"), "mmce"),
        (params("mmce", lam="2.0", pair_reduction="sum"), None),  # another scale of λ
        (params("mmce", lam="1.0", pair_reduction="mean"), None),
        (params("dual_focal", gamma="5.0"), None),
        (params("ce", meta="label_smoothing_vector"), None),  # a meta-learner
        (params("ce", meta=""), "ce"),
        ({"loss.name": "ce", **PAPER}, "ce"),  # no meta section logged: a plain run
        ({**params("ce"), "protocol": "safcl"}, None),  # another protocol than the paper's
        ({**params("ce"), "train.epochs": "3"}, None),  # not the paper's 350 epochs
        ({"loss.name": "ce"}, None),  # no protocol, no epochs: not known to be the paper's
        ({}, None),
    ],
)
def test_method_of(run, method):
    assert method_of(run) == method


def test_published_cifar10_resnet50_ce():
    """The README's CIFAR-10 ResNet-50 CE cell: error 4.95, ECE 4.35 -> 1.35 at T = 2.5."""
    run = {"data.name": "cifar10", "model.name": "resnet50", **params("ce")}
    assert published_for(run) == Published(4.95, 4.35, 1.35, 2.5, "paper")


def test_published_cifar100_resnet50_confidence():
    """CIFAR-100 ResNet-50: CE third-party checked; the FL-3 row unverified; MMCE's ECE checked
    but its error not."""
    base = {"data.name": "cifar100", "model.name": "resnet50"}
    assert published_for({**base, **params("ce")}).confidence == "third-party"
    mmce = published_for({**base, **params("mmce", lam="2.0", pair_reduction="mean")})
    assert (
        mmce.confidence_of("ece") == "third-party" and mmce.confidence_of("error") == "unverified"
    )
    fl3 = published_for({**base, **params("focal", gamma="3.0")})
    assert fl3 == Published(22.75, 5.13, 1.97, 1.1, "unverified")


def test_published_cifar100_wrn_has_no_error():
    run = {"data.name": "cifar100", "model.name": "wrn26_10", **params("ce")}
    assert published_for(run) == Published(None, 15.33, 2.88, 2.2, "unverified")


def test_nothing_published():
    """Another setting, a method the paper did not run, or a meta-learner: None."""
    assert published_for({"data.name": "digits", "model.name": "small_cnn", **params("ce")}) is None
    cifar = {"data.name": "cifar10", "model.name": "resnet50"}
    assert published_for({**cifar, **params("focal", gamma="2.0")}) is None
    assert published_for({**cifar, **params("ce", meta="l2_head")}) is None
