"""The metrics the foundation logs every epoch, against hand-computed values and independent
implementations (scikit-learn)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss

from calibexp.errors import CalibexpError
from calibexp.metrics import CALIBRATORS, METRICS, Predictions, fit_temperature, metric_suite
from tests.support.torrvision_reference import ece_reference


def top_label_ece(probs: np.ndarray, labels: np.ndarray) -> float:
    """torrvision's ECELoss on class probabilities (tests/support/torrvision_reference.py)."""
    return ece_reference(probs.max(1), (probs.argmax(1) == labels).astype(float))


def test_ece_by_hand():
    # confidences 0.9 (right), 0.9 (wrong), 0.6 (right), 0.3 (wrong; 4 classes so 0.3 can be max)
    probs = torch.tensor(
        [[0.9, 0.05, 0.05, 0.0], [0.9, 0.1, 0.0, 0.0], [0.2, 0.6, 0.1, 0.1], [0.3, 0.25, 0.25, 0.2]]
    )
    targets = torch.tensor([0, 1, 1, 3])
    p = Predictions(probs.log(), targets)
    # bins: {0.9, 0.9} acc 0.5 conf 0.9 -> 2/4*0.4; {0.6} 1/4*0.4; {0.3} 1/4*0.3
    assert METRICS.build("ece", p, bins=15).item() == pytest.approx(0.2 + 0.1 + 0.075, abs=1e-6)
    assert METRICS.build("acc", p).item() == pytest.approx(0.5)


@pytest.mark.parametrize("k, n", [(2, 1000), (10, 5000), (100, 3000)])
def test_suite_against_references(k, n):
    gen = torch.Generator().manual_seed(k)
    logits = torch.randn(n, k, generator=gen) * 3
    targets = torch.randint(0, k, (n,), generator=gen)
    probs = torch.softmax(logits.double(), 1).numpy()
    got = metric_suite(logits, targets)
    assert got["acc"] == pytest.approx((probs.argmax(1) == targets.numpy()).mean(), abs=1e-7)
    assert got["nll"] == pytest.approx(
        log_loss(targets.numpy(), probs, labels=list(range(k))), rel=1e-6
    )
    onehot = np.eye(k)[targets.numpy()]
    assert got["brier"] == pytest.approx(((probs - onehot) ** 2).sum(1).mean(), rel=1e-5)
    assert got["ece_15"] == pytest.approx(top_label_ece(probs, targets.numpy()), abs=1e-6)


def test_one_hot_confident_all_wrong_has_ece_one():
    logits = torch.full((50, 10), -1e4)
    logits[:, 0] = 1e4
    got = metric_suite(logits, torch.ones(50, dtype=torch.long))
    assert got["ece_15"] == pytest.approx(1.0) and got["acc"] == 0.0
    assert got["brier"] == pytest.approx(2.0)


def test_temperature_recovers_a_known_factor():
    # calibrated logits: labels drawn from softmax(z); then sharpen by 2.5
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(20000, 10, generator=gen) * 2
    y = torch.multinomial(torch.softmax(z, 1), 1, generator=gen).squeeze(1)
    assert fit_temperature(z * 2.5, y) == pytest.approx(2.5, rel=0.02)
    assert fit_temperature(z / 2.0, y) == pytest.approx(0.5, rel=0.02)


@pytest.mark.parametrize("correct", [True, False])
def test_temperature_is_finite_and_positive_on_degenerate_val_sets(correct):
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(200, 10, generator=gen)
    y = z.argmax(1) if correct else (z.argmax(1) + 1) % 10
    t = fit_temperature(z, y)
    assert math.isfinite(t) and t > 0


def torrvision_grid_search(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """torrvision's ``set_temperature(cross_validate="ece")``, written out: T from 0.1 in steps
    of 0.1 for 100 values, kept when val ECE strictly improves."""
    best_t, best_ece = None, math.inf
    for i in range(1, 101):
        t = i / 10
        probs = torch.softmax(logits / t, 1).double().numpy()
        err = top_label_ece(probs, targets.numpy())
        if err < best_ece - 1e-12:  # strict, as torrvision's `if ece_val > after_temperature_ece`
            best_t, best_ece = t, err
    return best_t


@pytest.mark.parametrize("scale", [0.4, 1.0, 2.5])
def test_temperature_grid_ece_is_torrvisions_protocol(scale):
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(5000, 10, generator=gen) * 2
    y = torch.multinomial(torch.softmax(z, 1), 1, generator=gen).squeeze(1)
    got = CALIBRATORS.build("temperature_grid_ece", z * scale, y, bins=15)
    assert got == torrvision_grid_search(z * scale, y)
    assert got == pytest.approx(scale, abs=0.15)  # the calibrated temperature, on a 0.1 grid
    assert CALIBRATORS.info("temperature_grid_ece")["split"] == "ts_grid"
    assert CALIBRATORS.info("temperature")["split"] == "ts"


def test_temperature_grid_ece_on_degenerate_val_sets():
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(200, 10, generator=gen)
    # 100% correct: ECE = 1 − mean confidence, lowest at the sharpest T; 0% correct: ECE = mean
    # confidence, lowest at the flattest T.
    assert CALIBRATORS.build("temperature_grid_ece", z, z.argmax(1)) == 0.1
    assert CALIBRATORS.build("temperature_grid_ece", z, (z.argmax(1) + 1) % 10) == 10.0


def test_calibrators_refuse_non_finite_logits():
    z = torch.zeros(4, 3)
    z[1, 2] = float("nan")
    for name in CALIBRATORS.names():
        with pytest.raises(CalibexpError, match="NaN or inf"):
            CALIBRATORS.build(name, z, torch.zeros(4, dtype=torch.long))
