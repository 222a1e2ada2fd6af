"""The shift aggregates and the SA-FCL table, by hand: per severity the mean and median over the
benchmark corruptions only (an extra corruption is logged per pair, never averaged in), and the
table's severity-5 MSP AUROC x100 with its mean over the same corruptions."""

from __future__ import annotations

import pytest

from calibexp.robustness import sa_fcl_table, shift_metrics

BENCHMARK = ("gaussian_noise", "fog", "contrast")


def rows(extra: bool) -> list[dict]:
    acc = {"gaussian_noise": 0.5, "fog": 0.8, "contrast": 0.6, "spatter": 0.1}
    auroc = {"gaussian_noise": 0.7, "fog": 0.75, "contrast": 0.8, "spatter": 0.95}
    names = [*BENCHMARK, *(("spatter",) if extra else ())]
    out = []
    for corruption in names:
        for severity in range(1, 6):
            where = {"variant": "shift", "corruption": corruption, "severity": severity}
            value = acc[corruption] - 0.05 * severity
            out.append(
                {**where, "acc": value, "auroc_msp": auroc[corruption] - 0.01 * (5 - severity)}
            )
    return out


def test_means_and_medians_over_the_benchmark_corruptions_only():
    for extra in (False, True):
        metrics = shift_metrics("cifar10_c", rows(extra), BENCHMARK)
        # severity 5: acc 0.25, 0.55, 0.35 -> mean 0.38333, median 0.35
        assert metrics["shift/cifar10_c/mean/5/acc"] == pytest.approx(1.15 / 3)
        assert metrics["shift/cifar10_c/median/5/acc"] == pytest.approx(0.35)
        # every benchmark pair: mean of (0.5 + 0.8 + 0.6) - 0.05 * mean(1..5)
        assert metrics["shift/cifar10_c/mean/all/acc"] == pytest.approx(1.9 / 3 - 0.15)
        assert metrics["shift/cifar10_c/fog/2/acc"] == pytest.approx(0.7)
        assert ("shift/cifar10_c/spatter/5/acc" in metrics) == extra
        assert "shift/cifar10_c/median/all/acc" not in metrics


def test_sa_fcl_table_keys_and_mean(monkeypatch):
    from calibexp.data.shifted import SHIFTED

    monkeypatch.setitem(SHIFTED.info("cifar10_c"), "corruptions", BENCHMARK)
    metrics = shift_metrics("cifar10_c", rows(extra=True), BENCHMARK)
    table = sa_fcl_table("cifar10", "cifar10_c", metrics)
    assert table == pytest.approx(
        {
            "auroc_cifar10_to_cifar10_c_s5_gaussian_noise": 70.0,
            "auroc_cifar10_to_cifar10_c_s5_fog": 75.0,
            "auroc_cifar10_to_cifar10_c_s5_contrast": 80.0,
            "auroc_cifar10_to_cifar10_c_s5_spatter": 95.0,  # listed, not in the mean
            "auroc_cifar10_to_cifar10_c_s5_mean": 75.0,
        }
    )
    ood = sa_fcl_table("cifar10", "svhn", {"ood/svhn/msp/auroc": 0.9123})
    assert ood == pytest.approx({"auroc_cifar10_to_svhn": 91.23})


def test_a_shift_set_refuses_a_run_of_several_domains():
    from calibexp.data import DATASETS
    from calibexp.errors import CalibexpError
    from calibexp.robustness import Evaluated, _shift_set

    data = DATASETS.build("rotated_digits")
    nothing = None  # refused before the model, loaders or run are touched
    evaluated = Evaluated(nothing, data, nothing, 8, nothing, {}, 15, 0, nothing, nothing)
    with pytest.raises(CalibexpError, match="digits_c: run on rotated_digits holds several"):
        _shift_set(nothing, evaluated, "digits_c", nothing, 1.0, False)
