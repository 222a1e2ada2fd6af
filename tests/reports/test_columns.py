"""calibexp.reports.columns: a metric key's header, unit and direction, the default columns
of what the runs logged, the columns a report names, and a run's value of each."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from calibexp.errors import CalibexpError
from calibexp.reports.columns import (
    Column,
    chosen_columns,
    default_columns,
    describe,
    with_temperature,
)


@pytest.mark.parametrize(
    "key, label, percent, better",
    [
        ("test/ece_15", "ECE-15 %", True, "min"),
        ("test_ts_grid/ece_15", "ECE-15 % after grid TS", True, "min"),
        ("test_ts/ece_15", "ECE-15 % after TS", True, "min"),
        ("test/nll", "NLL", False, "min"),
        ("test/brier", "Brier", False, "min"),
        ("test/acc", "Acc %", True, "max"),
        ("test/adaece_10", "AdaECE-10 %", True, "min"),
        ("test/classece_15", "Classwise ECE-15 %", True, "min"),
        ("test/smece", "smECE %", True, "min"),
        ("error", "Error %", True, "min"),
        ("error_ts_grid", "Error % after grid TS", True, "min"),
        ("ood/svhn/msp/auroc", "AUROC % svhn (MSP)", True, "max"),
        ("ood/svhn/msp/fpr95", "FPR@95 % svhn (MSP)", True, "min"),
        ("ood_ts/svhn/msp/auroc", "AUROC % svhn (MSP) after TS", True, "max"),
        ("test/wobble", "wobble", False, None),
        ("custom/thing/x", "custom/thing/x", False, None),
    ],
)
def test_describe(key, label, percent, better):
    """Header, unit (%) and direction follow the metric's name; unknown names have none."""
    assert describe(key) == Column(key, label, percent, better)


def test_describe_direction_override():
    """``better`` replaces the direction the name implies, or gives one to an unknown metric."""
    assert describe("test/nll", "max").better == "max"
    assert describe("test/wobble", "min").better == "min"
    assert describe("error", "max").better == "max"


def test_error_columns_read_the_split_accuracy():
    assert describe("error").source_keys() == ["test/acc"]
    assert describe("error_ts_grid").source_keys() == ["test_ts_grid/acc"]
    assert describe("test/nll").source_keys() == ["test/nll"]


def test_with_temperature_only_when_logged():
    """A test_<split>/ column gets ' (T)' and <split>/temperature only if that was logged."""
    column = describe("test_ts_grid/ece_15")
    assert with_temperature(column, {"test_ts_grid/ece_15"}) == column
    with_t = with_temperature(column, {"test_ts_grid/ece_15", "ts_grid/temperature"})
    assert with_t == Column(
        "test_ts_grid/ece_15", "ECE-15 % after grid TS (T)", True, "min", "ts_grid/temperature"
    )
    ts = with_temperature(describe("test_ts/nll"), {"ts/temperature", "ts_grid/temperature"})
    assert (ts.label, ts.temperature) == ("NLL after TS (T)", "ts/temperature")


def test_with_temperature_never_on_plain_test_or_error_columns():
    logged = {"ts/temperature", "ts_grid/temperature", "test/temperature"}
    for key in ("test/ece_15", "error_ts_grid", "ood/svhn/msp/auroc"):
        assert with_temperature(describe(key), logged).temperature is None


FULL_15 = {
    "test/acc",
    "test/ece_15",
    "test_ts/ece_15",
    "ts/temperature",
    "test_ts_grid/ece_15",
    "ts_grid/temperature",
    "test/adaece_15",
    "test/classece_15",
    "test/smece",
    "test/nll",
    "test/brier",
    "ood/svhn/msp/auroc",
    "ood/cifar100/msp/auroc",
    "ood/svhn/msp/fpr95",
    "ood/svhn/energy/auroc",
    "ood_ts/svhn/msp/auroc",
}


def test_default_columns_with_grid_ts_and_ood():
    """The papers' columns in order, grid TS with its T, then each OoD set's MSP AUROC (sorted);
    no Brier, FPR95, other scores or TS'd OoD."""
    columns = default_columns(FULL_15, 15)
    assert [c.key for c in columns] == [
        "error",
        "test/ece_15",
        "test_ts_grid/ece_15",
        "test/adaece_15",
        "test/classece_15",
        "test/smece",
        "test/nll",
        "ood/cifar100/msp/auroc",
        "ood/svhn/msp/auroc",
    ]
    assert columns[2].temperature == "ts_grid/temperature"
    assert [c.temperature for i, c in enumerate(columns) if i != 2] == [None] * 8


def test_default_columns_without_grid_ts_use_ts():
    logged = FULL_15 - {"test_ts_grid/ece_15", "ts_grid/temperature"}
    columns = default_columns(logged, 15)
    assert columns[2].key == "test_ts/ece_15"
    assert (columns[2].label, columns[2].temperature) == ("ECE-15 % after TS (T)", "ts/temperature")


def test_default_columns_bins_and_what_was_not_logged():
    """bins 10 asks for *_10 keys: those logged at 15 bins only drop out; without test/acc no
    error column; without OoD keys no OoD column."""
    assert [c.key for c in default_columns(FULL_15, 10)] == [
        "error",
        "test/smece",
        "test/nll",
        "ood/cifar100/msp/auroc",
        "ood/svhn/msp/auroc",
    ]
    logged = {"test/ece_10", "test_ts_grid/ece_10", "test/nll"}
    assert [c.key for c in default_columns(logged, 10)] == [
        "test/ece_10",
        "test_ts_grid/ece_10",
        "test/nll",
    ]
    assert default_columns(set(), 15) == []


def test_chosen_columns_default_and_nothing_logged():
    assert chosen_columns((), FULL_15, 15) == default_columns(FULL_15, 15)
    with pytest.raises(CalibexpError, match=r"none of the default columns .* test/brier"):
        chosen_columns((), {"test/brier"}, 15)


def test_chosen_columns_in_order_with_overrides():
    """Named columns keep their order; key:max / key:min set the direction; T where logged."""
    columns = chosen_columns(("test/nll:max", "test_ts_grid/ece_15", "error:min"), FULL_15, 15)
    assert [(c.key, c.better) for c in columns] == [
        ("test/nll", "max"),
        ("test_ts_grid/ece_15", "min"),
        ("error", "min"),
    ]
    assert columns[1].temperature == "ts_grid/temperature"


def test_chosen_column_nobody_logged_names_the_closest():
    with pytest.raises(
        CalibexpError,
        match=r"column 'test/ece_20': no selected run logged 'test/ece_20' "
        r"\(did you mean 'test/ece_15'\?\); logged: ",
    ):
        chosen_columns(("test/ece_20",), FULL_15, 15)
    with pytest.raises(CalibexpError, match=r"column 'error': no selected run logged 'test/acc'"):
        chosen_columns(("error",), {"test/nll"}, 15)


def test_chosen_column_bad_direction():
    with pytest.raises(CalibexpError, match="direction 'up', expected min or max"):
        chosen_columns(("test/nll:up",), FULL_15, 15)


def test_value_of_error_and_missing():
    """error = 1 - test/acc from a search_runs row; a missing or NaN metric is NaN."""
    run = pd.Series({"metrics.test/acc": 0.9, "metrics.test/nll": float("nan"), "run_id": "r"})
    assert abs(describe("error").value_of(run) - 0.1) <= 1e-15
    assert describe("test/acc").value_of(run) == 0.9
    assert math.isnan(describe("test/nll").value_of(run))
    assert math.isnan(describe("test/ece_15").value_of(run))
    assert math.isnan(describe("error_ts_grid").value_of(run))


def test_shown_in_percent_only_for_percent_columns():
    assert describe("test/ece_15").shown(0.0125) == pytest.approx(1.25, abs=1e-13)
    assert describe("test/nll").shown(0.0125) == 0.0125
