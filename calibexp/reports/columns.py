"""A report's columns: which logged metric, in which unit, and which direction is better.

The default columns reproduce the focal-loss papers' table (Mukhoti et al., NeurIPS 2020,
Tables 1-2): test error %, ECE % before and after temperature scaling with T in parentheses
(torrvision's grid temperature, chosen by val ECE, where the runs logged it: ``test_ts_grid``),
AdaECE %, classwise ECE %, smECE %, NLL, and each OoD set's MSP AUROC % where runs logged one.

A column's values are the runs' logged values, in the runs' units (fractions); the table shows
the percentages (× 100) in the header's unit, the CSV the logged values themselves. The one
derived column, ``error``, is 1 − ``test/acc`` (``error_ts`` and the like: of that split).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from calibexp.errors import CalibexpError
from calibexp.registry import closest

# Logged metric names (bin count stripped) shown in %: fractions of samples or of probability.
PERCENT = {"acc", "error", "ece", "mce", "ece_over", "ece_under", "adaece", "classece",
           "smece", "conf", "auroc", "aupr_in", "aupr_out", "fpr95"}  # fmt: skip
HIGHER_IS_BETTER = {"acc", "auroc", "aupr_in", "aupr_out"}
LOWER_IS_BETTER = {"error", "ece", "mce", "adaece", "classece", "smece", "nll", "brier", "fpr95",
                   "loss"}  # fmt: skip
NAMES = {"acc": "Acc", "error": "Error", "ece": "ECE", "mce": "MCE", "adaece": "AdaECE",
         "classece": "Classwise ECE", "smece": "smECE", "nll": "NLL", "brier": "Brier",
         "conf": "Confidence", "auroc": "AUROC", "aupr_in": "AUPR-In", "aupr_out": "AUPR-Out",
         "fpr95": "FPR@95"}  # fmt: skip
# What a split's prefix says about the predictions: after which calibrator.
AFTER = {"test_ts": "after TS", "test_ts_grid": "after grid TS"}
METRIC_PREFIX = "metrics."


@dataclass(frozen=True)
class Column:
    key: str  # a logged metric key, or error[_<split>] (1 - <split>/acc)
    label: str  # the header, unit included
    percent: bool
    better: str | None  # "min", "max", or None: no best, no bold
    temperature: str | None = None  # the key of the T shown in parentheses

    def source_keys(self) -> list[str]:
        return [self.accuracy_key() if self.is_error() else self.key]

    def is_error(self) -> bool:
        return _error_split(self.key) is not None

    def accuracy_key(self) -> str:
        return f"{_error_split(self.key)}/acc"

    def value_of(self, run: pd.Series) -> float:
        """The value one run logged (a row of ``mlflow.search_runs``' frame), in logged units;
        NaN where the run did not log it."""
        value = run.get(METRIC_PREFIX + self.source_keys()[0])
        if value is None or pd.isna(value):
            return float("nan")
        return 1.0 - float(value) if self.is_error() else float(value)

    def shown(self, value: float) -> float:
        return 100.0 * value if self.percent else value


def base_name(metric: str) -> str:
    """``ece_15`` → ``ece``; ``auroc`` → ``auroc``."""
    return re.sub(r"_\d+$", "", metric)


def _error_split(key: str) -> str | None:
    """The split whose accuracy an error column is 1 minus (``error`` → ``test``,
    ``error_ts`` → ``test_ts``), or None for any other key."""
    if key == "error":
        return "test"
    return "test_" + key.removeprefix("error_") if key.startswith("error_") else None


def describe(key: str, better: str | None = None) -> Column:
    """The column of a metric key, its unit and direction from the metric's name
    (``test/ece_15`` → "ECE-15 %", lower is better; ``ood/svhn/msp/auroc`` → "AUROC % svhn
    (MSP)", higher is better); ``better`` overrides the direction."""
    split = _error_split(key)
    if split is not None:
        suffix = f" {AFTER[split]}" if split in AFTER else ""
        return Column(key, f"Error %{suffix}", True, better or "min")
    parts = key.split("/")
    name = base_name(parts[-1])
    bins = parts[-1][len(name) + 1 :]
    shown = NAMES.get(name, parts[-1]) + (f"-{bins}" if bins else "")
    percent = name in PERCENT
    unit = " %" if percent else ""
    if parts[0] in ("ood", "ood_ts") and len(parts) == 4:  # ood/<set>/<score>/<metric>
        after = " after TS" if parts[0] == "ood_ts" else ""
        label = f"{shown}{unit} {parts[1]} ({parts[2].upper()}){after}"
    elif len(parts) == 2 and parts[0] in AFTER:
        label = f"{shown}{unit} {AFTER[parts[0]]}"
    elif len(parts) == 2 and parts[0] == "test":
        label = f"{shown}{unit}"
    else:
        label = f"{key}{unit}"
    if better is None:
        better = "max" if name in HIGHER_IS_BETTER else "min" if name in LOWER_IS_BETTER else None
    return Column(key, label, percent, better)


def with_temperature(column: Column, logged: set[str]) -> Column:
    """A ``test_<calibrator split>/…`` column carries that calibrator's T in parentheses."""
    split = column.key.split("/")[0]
    if split.startswith("test_") and "/" in column.key:
        temperature = f"{split.removeprefix('test_')}/temperature"
        if temperature in logged:
            return Column(column.key, f"{column.label} (T)", column.percent, column.better,
                          temperature)  # fmt: skip
    return column


def default_columns(logged: set[str], bins: int) -> list[Column]:
    """The papers' columns that the selected runs logged (see the module's docstring)."""
    post = "test_ts_grid" if f"test_ts_grid/ece_{bins}" in logged else "test_ts"
    keys = ["error", f"test/ece_{bins}", f"{post}/ece_{bins}", f"test/adaece_{bins}",
            f"test/classece_{bins}", "test/smece", "test/nll"]  # fmt: skip
    keys += sorted(k for k in logged if re.fullmatch(r"ood/[^/]+/msp/auroc", k))
    columns = [describe(k) for k in keys]
    return [with_temperature(c, logged) for c in columns if set(c.source_keys()) <= logged]


def chosen_columns(names: tuple[str, ...], logged: set[str], bins: int) -> list[Column]:
    """The columns a report asked for (``key`` or ``key:min`` / ``key:max``), or the default
    ones; a metric no selected run logged is refused naming the ones that were."""
    if not names:
        columns = default_columns(logged, bins)
        if not columns:
            raise CalibexpError(
                "none of the default columns (test error, ECE, NLL, …) was logged by the "
                f"selected runs; name columns among: {_sample(logged)}"
            )
        return columns
    columns = []
    for name in names:
        key, _, better = name.partition(":")
        if better not in ("", "min", "max"):
            raise CalibexpError(f"column {name!r}: direction {better!r}, expected min or max")
        column = describe(key, better or None)
        missing = [k for k in column.source_keys() if k not in logged]
        if missing:
            raise CalibexpError(
                f"column {key!r}: no selected run logged {missing[0]!r}"
                f"{closest(missing[0], logged)}; logged: {_sample(logged)}"
            )
        columns.append(with_temperature(column, logged))
    return columns


def _sample(logged: set[str], limit: int = 40) -> str:
    keys = sorted(k for k in logged if not k.startswith(("shift", "evidence/", "train/")))
    more = f", … ({len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more
