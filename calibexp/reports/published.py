"""Published numbers to set beside a reproduction: Mukhoti et al., "Calibrating Deep Neural
Networks using Focal Loss", NeurIPS 2020 (arXiv:2002.09437), for CIFAR-10/100 × ResNet-50/110,
WRN-26-10 and DenseNet-121 × CE, Brier, MMCE (λ = 2), LS-0.05, FL-3 and FLSD-53.

Test error %, ECE % (15 bins) before temperature scaling, and after it with the T of
torrvision's grid (chosen by val ECE) — calibexp's ``test_ts_grid`` columns. Where the numbers
come from, and how sure we are of them:

- ``paper``: CIFAR-10, the README of github.com/torrvision/focal_calibration, which gives the
  paper's Tables 1 and 2;
- ``third-party``: CIFAR-100 ResNet-50, checked cell by cell against arXiv v2 by a third-party
  claim check;
- ``unverified``: the other CIFAR-100 rows (and CIFAR-100 ResNet-50's FL-3 row and MMCE error),
  transcribed from the paper's tables but not checked against it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

SOURCE = "Mukhoti et al., NeurIPS 2020 (arXiv:2002.09437), Tables 1-2"
METHODS = ("ce", "brier", "mmce", "ls-0.05", "fl-3", "flsd-53")


@dataclass(frozen=True)
class Published:
    error: float | None  # test error %
    ece: float  # ECE-15 % before temperature scaling
    ece_ts: float  # ECE-15 % after the grid temperature
    temperature: float
    confidence: str  # paper | third-party | unverified
    error_confidence: str | None = None  # where the error's differs from the ECEs'

    def confidence_of(self, which: str) -> str:
        return self.error_confidence or self.confidence if which == "error" else self.confidence


def _row(errors: list[float | None], eces: str, confidence: str) -> dict[str, Published]:
    """One model's six methods: errors, and "pre/post(T)" cells separated by spaces."""
    cells = []
    for cell in eces.split():
        pre, rest = cell.split("/")
        post, temperature = rest.rstrip(")").split("(")
        cells.append((float(pre), float(post), float(temperature)))
    return {
        method: Published(error, *cell, confidence)
        for method, error, cell in zip(METHODS, errors, cells, strict=True)
    }


PUBLISHED: dict[tuple[str, str], dict[str, Published]] = {
    ("cifar10", "resnet50"): _row(
        [4.95, 5.00, 4.99, 5.29, 5.25, 4.98],
        "4.35/1.35(2.5) 1.82/1.08(1.1) 4.56/1.19(2.6) 2.96/1.67(0.9) 1.48/1.42(1.1) 1.55/0.95(1.1)",
        "paper",
    ),
    ("cifar10", "resnet110"): _row(
        [4.89, 5.48, 5.40, 5.52, 5.08, 5.42],
        "4.41/1.09(2.8) 2.56/1.25(1.2) 5.08/1.42(2.8) 2.09/2.09(1.0) 1.55/1.02(1.1) 1.87/1.07(1.1)",
        "paper",
    ),
    ("cifar10", "wrn26_10"): _row(
        [3.86, 4.08, 3.91, 4.20, 4.13, 4.01],
        "3.23/0.92(2.2) 1.25/1.25(1.0) 3.29/0.86(2.2) 4.26/1.84(0.8) 1.69/0.97(0.9) 1.56/0.84(0.9)",
        "paper",
    ),
    ("cifar10", "densenet121"): _row(
        [5.00, 5.11, 5.41, 5.09, 5.33, 5.46],
        "4.52/1.31(2.4) 1.53/1.53(1.0) 5.10/1.61(2.5) 1.88/1.82(0.9) 1.32/1.26(0.9) 1.22/1.22(1.0)",
        "paper",
    ),
    ("cifar100", "resnet50"): {
        **_row(
            [23.30, 23.39, 23.20, 23.43, 22.75, 23.22],
            "17.52/3.42(2.1) 6.52/3.64(1.1) 15.32/2.38(1.8) 7.81/4.01(1.1) 5.13/1.97(1.1) "
            "4.50/2.00(1.1)",
            "third-party",
        ),
        # the FL-3 row and the MMCE error were not part of the third-party check
        "fl-3": Published(22.75, 5.13, 1.97, 1.1, "unverified"),
        "mmce": Published(23.20, 15.32, 2.38, 1.8, "third-party", "unverified"),
    },
    ("cifar100", "resnet110"): _row(
        [None] * 6,
        "19.05/4.43(2.3) 7.88/4.65(1.2) 19.14/3.86(2.3) 11.02/5.89(1.1) 8.64/3.95(1.2) "
        "8.56/4.12(1.2)",
        "unverified",
    ),
    ("cifar100", "wrn26_10"): _row(
        [None] * 6,
        "15.33/2.88(2.2) 4.31/2.70(1.1) 13.17/4.37(1.9) 4.84/4.84(1.0) 2.13/2.13(1.0) "
        "3.03/1.64(0.9)",
        "unverified",
    ),
    ("cifar100", "densenet121"): _row(
        [None] * 6,
        "20.98/4.27(2.3) 5.17/2.29(1.1) 19.13/3.06(2.1) 12.89/7.52(1.2) 4.15/1.25(1.1) "
        "3.73/1.31(1.1)",
        "unverified",
    ),
}


def method_of(params: Mapping[str, str]) -> str | None:
    """The published method a run's config is (its flattened params), or None. The paper's
    setting only: torrvision's protocol and 350 epochs (Mukhoti et al.'s CIFAR schedule), the
    loss with the hyper-parameters of the table (LS ε = 0.05, FL γ = 3, FLSD-53's γ 5/3 below
    p_t 0.2/0.5, MMCE λ = 2 on the pair mean), and no meta-learner."""

    def value(key: str) -> float | None:
        try:
            return float(params[key])
        except (KeyError, TypeError, ValueError):
            return None

    if params.get("protocol") != "torrvision" or value("train.epochs") != 350:
        return None  # another training than the paper's: its numbers are no reference
    if params.get("meta.name", "none") not in ("none", ""):
        return None  # meta-calibration trains another model than the paper's
    loss = params.get("loss.name")
    if loss in ("ce", "brier"):
        return loss
    if loss == "flsd53" and (
        _numbers(params.get("loss.gammas")) == [5.0, 3.0, 3.0]
        and _numbers(params.get("loss.thresholds")) == [0.2, 0.5]
    ):
        return "flsd-53"
    if loss == "mmce" and value("loss.lam") == 2.0 and params.get("loss.pair_reduction") == "mean":
        return "mmce"
    if loss == "label_smoothing" and value("loss.smoothing") == 0.05:
        return "ls-0.05"
    if loss == "focal" and value("loss.gamma") == 3.0:
        return "fl-3"
    return None


def _numbers(text: str | None) -> list[float] | None:
    """A logged list param (``[5.0, 3.0, 3.0]``) as floats, or None."""
    try:
        return [float(x) for x in (text or "").strip("[]").split(",")]
    except ValueError:
        return None


def published_for(params: Mapping[str, str]) -> Published | None:
    method = method_of(params)
    setting = PUBLISHED.get((params.get("data.name", ""), params.get("model.name", "")))
    return setting.get(method) if setting and method else None
