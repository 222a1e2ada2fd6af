"""The report's table: runs grouped by config keys, each column's mean ± std over seeds, which
entries are bold, and every flag a reader needs (missing seeds, runs not counted, groups that mix
configs).

Conventions, stated under every table: mean over the group's counted seeds; std is the sample
standard deviation (ddof = 1; none for n = 1); n is the number of seeds behind the entry.
OpenOOD's ``eval_ood.py`` prints the population std (ddof = 0), which is √((n−1)/n) times this
one (0.82× for n = 3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

import numpy as np
import pandas as pd

from calibexp.config import NO_META, ExperimentConfig, semantic_keys
from calibexp.errors import CalibexpError
from calibexp.registry import closest
from calibexp.reports.columns import METRIC_PREFIX, Column, chosen_columns
from calibexp.reports.published import Published, published_for
from calibexp.reports.selection import PARAM, RUN_KEY_TAG, Selected, tag_column
from calibexp.reports.significance import Verdict, verdicts
from calibexp.reports.spec import ReportSpec, param_key

NOT_COUNTED = "not counted"


@dataclass(frozen=True)
class Entry:
    """One group's values of one column."""

    values: dict[int, float]  # seed -> the run's value (logged units)
    mean: float
    std: float  # ddof = 1; nan for n < 2
    temperature: float | None  # the mean T of the column's calibrator, where it has one
    verdict: Verdict

    @property
    def n(self) -> int:
        return len(self.values)


@dataclass
class Group:
    key: tuple[str, ...]  # the group_by values
    runs: dict[int, pd.Series] = field(default_factory=dict)  # seed -> counted run
    entries: dict[str, Entry] = field(default_factory=dict)  # column key -> entry
    published: Published | None = None
    flags: list[str] = field(default_factory=list)

    def label(self) -> str:
        return "/".join(self.key)


@dataclass
class Table:
    spec: ReportSpec
    columns: list[Column]
    groups: list[Group]
    runs: pd.DataFrame  # every listed run with its group, seed, and whether it counted (why not)
    notes: list[str]  # about the selection as a whole


def build_table(selected: Selected, spec: ReportSpec) -> Table:
    runs = selected.runs.copy()
    for name in spec.group_by:
        _require_param(runs, name)
    forced = tag_column(runs, "calibexp.forced").notna()
    pruned = tag_column(runs, "calibexp.trial_state") == "PRUNED"
    results = (runs["status"] == "FINISHED") & ~pruned
    spec, notes = _with_varying_keys(spec, runs[results], selected.cells)
    group_params = spec.group_params
    runs["group"] = [_group_of(row, group_params) for row in _param_rows(runs, selected.cells)]
    runs["seed"] = pd.to_numeric(runs[PARAM + "seed"], errors="coerce").astype("Int64")
    runs["counted"], runs["why"] = False, ""
    groups: dict[tuple[str, ...], Group] = {}
    order = runs.assign(_forced=forced).sort_values(["_forced", "start_time", "run_id"]).index
    for i in order:
        row = runs.loc[i]
        if pruned[i]:  # a study's pruned trial stopped early on purpose: no row of its own
            runs.loc[i, "why"] = f"pruned trial: {NOT_COUNTED}"
            continue
        group = groups.setdefault(row["group"], Group(row["group"]))
        seed = row["seed"]
        if row["status"] != "FINISHED":
            runs.loc[i, "why"] = f"{row['status']}: {NOT_COUNTED}"
        elif pd.isna(seed):
            runs.loc[i, "why"] = f"no seed param: {NOT_COUNTED}"
        elif int(seed) in group.runs:
            first = group.runs[int(seed)]["run_id"]
            runs.loc[i, "why"] = f"duplicate of seed {seed} (run {first}): {NOT_COUNTED}"
        else:
            group.runs[int(seed)] = row
            runs.loc[i, "counted"] = True
    counted = runs[runs["counted"]]
    if counted.empty:
        states = ", ".join(f"{n} {s}" for s, n in runs["status"].value_counts().items())
        raise CalibexpError(f"the selection holds no FINISHED result runs ({states})")
    logged = {c.removeprefix(METRIC_PREFIX) for c in counted if c.startswith(METRIC_PREFIX)
              and counted[c].notna().any()}  # fmt: skip
    columns = chosen_columns(spec.columns, logged, _bins(counted))
    expected = _expected_seeds(selected.cells, group_params)
    for key in expected or {}:  # a sweep's group that has no run at all is a row too
        groups.setdefault(key, Group(key))
    ordered = [groups[k] for k in sorted(groups)]
    blocks = group_blocks(ordered, spec)
    _flag_seeds(blocks, expected)
    for group in ordered:
        for _, row in runs[(runs["group"] == group.key) & ~runs["counted"] & ~pruned].iterrows():
            seed = "–" if pd.isna(row["seed"]) else row["seed"]
            group.flags.append(f"run {row['run_id']} (seed {seed}) {row['why']}")
        if spec.published and group.runs:
            group.published = published_for(_params(next(iter(group.runs.values()))))
    for column in columns:
        _fill(blocks, column, spec.alpha)
    if pruned.any():
        notes.append(f"{int(pruned.sum())} pruned trial(s) not counted (runs.csv lists them)")
    notes += [f"{n} {what}(s) left out" for what, n in sorted(selected.left_out.items())]
    runs = runs.sort_values(["group", "seed", "run_id"], na_position="last")
    return Table(spec, columns, ordered, runs.reset_index(drop=True), notes)


def _require_param(runs: pd.DataFrame, name: str) -> None:
    key = param_key(name)
    if PARAM + key not in runs:
        params = sorted(c.removeprefix(PARAM) for c in runs if c.startswith(PARAM))
        raise CalibexpError(
            f"group key {name!r} ({key}) is no param of the selected runs"
            f"{closest(key, params)}; params: {', '.join(params)}; aliases: dataset, model, "
            "loss, protocol, meta"
        )


def _param_rows(
    runs: pd.DataFrame, cells: dict[str, dict[str, str]] | None = None
) -> list[dict[str, str]]:
    """Each run's config keys (its params), or, for a sweep's run, those of the cell its run
    key matched: the cell is the config (a run trained before a section existed logged fewer
    params, and a plain run's key leaves the meta section out)."""
    keys = tag_column(runs, RUN_KEY_TAG)
    return [
        dict(cells[key]) if cells and key in cells else _params(row)
        for key, (_, row) in zip(keys, runs.iterrows())
    ]


# The roots of a flattened config key (``loss`` of ``loss.gamma``, ``seed``): a run's other
# params are not its config (``mlflow run`` logs its entry point's parameters, ``config``,
# ``overrides``, ``force``, on the run it makes).
CONFIG_ROOTS = frozenset(f.name for f in fields(ExperimentConfig))


def _config_keys(params: dict[str, str]) -> dict[str, str]:
    """The semantic config keys of one run, as its run key counts them: no ``NON_SEMANTIC``
    key, no seed, and no ``meta.*`` key of a plain run (``config.run_key``)."""
    config = {k: v for k, v in params.items() if k.split(".")[0] in CONFIG_ROOTS and k != "seed"}
    return semantic_keys(config, meta_enabled=params.get("meta.name", NO_META) != NO_META)


def _group_of(params: dict[str, str], group_params: list[str]) -> tuple[str, ...]:
    return tuple(params.get(k, "") for k in group_params)


def _with_varying_keys(
    spec: ReportSpec, results: pd.DataFrame, cells: dict[str, dict[str, str]] | None
) -> tuple[ReportSpec, list[str]]:
    """``spec`` with every semantic config key that varies within one of its groups added to
    ``group_by`` (a table never averages two configs as if they were seeds), where group_by is
    the default; where it was given, such a key is refused in one line."""
    rows = [*_param_rows(results, cells), *(cells or {}).values()]
    group_params = spec.group_params
    values: dict[tuple[tuple[str, ...], str], set[str]] = {}
    for params in rows:
        group = _group_of(params, group_params)
        for key, value in _config_keys(params).items():
            if key not in group_params:
                values.setdefault((group, key), set()).add(value)
    varying = sorted({key for (_, key), seen in values.items() if len(seen) > 1})
    if not varying:
        return spec, []
    seen_values = {key: sorted(set().union(*(v for (_, k), v in values.items() if k == key)))
                   for key in varying}  # fmt: skip
    shown = "; ".join(
        f"{key} = {', '.join(seen_values[key][:5])}{', …' if len(seen_values[key]) > 5 else ''}"
        for key in varying[:5]
    )
    if spec.group_by_given:
        raise CalibexpError(
            f"group_by {' '.join(spec.group_by)} averages different configs as seeds: {shown}; "
            f"add {' '.join(varying)} to group_by, or narrow the selection with filter:"
        )
    extended = replace(spec, group_by=(*spec.group_by, *varying))
    return extended, [
        f"group_by extended with {' '.join(varying)}: they vary within rows ({shown})"
    ]


def _expected_seeds(
    cells: dict[str, dict[str, str]] | None, group_params: list[str]
) -> dict[tuple[str, ...], set[int]] | None:
    """A sweep's seeds per group of its cells (None: no sweep, nothing expected)."""
    if cells is None:
        return None
    expected: dict[tuple[str, ...], set[int]] = {}
    for params in cells.values():
        expected.setdefault(_group_of(params, group_params), set()).add(int(params["seed"]))
    return expected


def group_blocks(groups: list[Group], spec: ReportSpec) -> dict[tuple[str, ...], list[Group]]:
    """``groups`` by their block (``compare_within`` values), in their order."""
    blocks: dict[tuple[str, ...], list[Group]] = {}
    for group in groups:
        blocks.setdefault(spec.block_of(group.key), []).append(group)
    return blocks


def _params(row: pd.Series) -> dict[str, str]:
    return {k.removeprefix(PARAM): v for k, v in row.items() if k.startswith(PARAM) and
            isinstance(v, str)}  # fmt: skip


def _bins(counted: pd.DataFrame) -> int:
    column = counted.get(PARAM + "eval.ece_bins")
    values = sorted(set(column.dropna())) if column is not None else []
    return int(values[0]) if len(values) == 1 else 15


def _flag_seeds(
    blocks: dict[tuple[str, ...], list[Group]], expected: dict[tuple[str, ...], set[int]] | None
) -> None:
    """A seed is missing where the sweep expected it or, without a sweep, where another group of
    the same block (dataset and model) has it."""
    for groups in blocks.values():
        every = set().union(*(g.runs for g in groups))
        for group in groups:
            wanted = expected.get(group.key, set()) if expected is not None else every
            missing = sorted(wanted - set(group.runs))
            if missing:
                group.flags.insert(
                    0,
                    f"missing seed(s) {', '.join(map(str, missing))}: n = {len(group.runs)} of "
                    f"{len(wanted)}",
                )


def _fill(blocks: dict[tuple[str, ...], list[Group]], column: Column, alpha: float) -> None:
    """Each group's entry of ``column``, and the verdicts within each block of rows."""
    values: dict[tuple[str, ...], dict[int, float]] = {}
    temperatures: dict[tuple[str, ...], float | None] = {}
    for group in (g for groups in blocks.values() for g in groups):
        seeds = {}
        for seed, row in group.runs.items():
            value = column.value_of(row)
            if not math.isnan(value):
                seeds[seed] = value
            else:
                group.flags.append(f"seed {seed} logged no {column.key}")
        values[group.key] = seeds
        temperatures[group.key] = _mean_of(group, column.temperature, seeds)
    for members in blocks.values():
        judged = verdicts({g.key: values[g.key] for g in members}, column.better, alpha)
        for group in members:
            seeds = values[group.key]
            data = np.array(list(seeds.values()), dtype=float)
            group.entries[column.key] = Entry(
                seeds,
                float(data.mean()) if len(data) else math.nan,
                float(data.std(ddof=1)) if len(data) > 1 else math.nan,
                temperatures[group.key],
                judged[group.key],
            )


def _mean_of(group: Group, key: str | None, seeds: dict[int, float]) -> float | None:
    """The mean of ``key`` over the runs of ``seeds`` (those behind the entry)."""
    if key is None:
        return None
    found = [group.runs[s].get(METRIC_PREFIX + key) for s in seeds]
    found = [float(v) for v in found if v is not None and not pd.isna(v)]
    return float(np.mean(found)) if found else None
