"""What a report is made of: which runs (``select``), how they are grouped, which columns.

``select`` (``mlflow run . -e report -P select=…``) is one of

- ``sweep:studies/sweep_demo.yaml`` (or the bare path of a sweep spec): the sweep's cells, each
  found by its run key in every experiment; a cell without a FINISHED run is a missing seed;
- ``sweep:<name>`` (``sweep:sweep-demo``, no spec file at hand): the runs the sweep's summary
  run lists (``sweep/table.csv``, else its workers' latest view) for the sweep of that name;
- ``study:NAME``: the runs tagged ``calibexp.study = NAME`` (trials and best-trial
  evaluations, never the study's parent run);
- ``experiment:NAME[,NAME…]``: every run of those experiments;
- ``filter:<MLflow search filter>``: across every active experiment, or, after an
  ``experiment:`` part (``experiment:calibexp-demo; filter:tags.`calibexp.loss` = 'ce'``), within
  those;
- the path of a report spec (``studies/report_demo.yaml``), which names all of a report's
  settings::

      name: report-demo
      select: sweep:studies/sweep_demo.yaml
      group_by: [dataset, model, loss, protocol]    # config keys (aliases below) or params
      compare_within: [dataset, model]              # bold the best of each block of rows
      columns: default                              # or [error, test/ece_15, test/brier, …]
      published: true                               # Mukhoti et al. 2020's numbers beside ours
      alpha: 0.05                                   # of the paired test (Holm-corrected)
      figures: {epochs: [], metrics: [val/ece_15, val/nll]}

The settings given on the command line override the spec's.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from calibexp.errors import CalibexpError
from calibexp.registry import closest
from calibexp.yaml_files import read_yaml_mapping, require_known_keys

# Short names for the config keys a paper groups by; any other flattened config key (a run's
# params, e.g. ``loss.gamma``) may be named as it is.
GROUP_ALIASES = {
    "dataset": "data.name",
    "model": "model.name",
    "loss": "loss.name",
    "protocol": "protocol",
    "meta": "meta.name",
    "seed": "seed",
}
DEFAULT_GROUP_BY = ("dataset", "model", "loss", "protocol")
DEFAULT_COMPARE_WITHIN = ("dataset", "model")
DEFAULT_FIGURE_METRICS = ("val/ece_15", "val/nll")
SPEC_KEYS = ("name", "select", "group_by", "compare_within", "columns", "published", "alpha",
             "figures")  # fmt: skip
FIGURE_KEYS = ("epochs", "metrics")
SELECT_KINDS = ("sweep", "study", "experiment", "filter")


@dataclass(frozen=True)
class Selection:
    """Where the runs come from (one of the forms above, ``filter`` combinable)."""

    sweep: Path | None = None
    study: str | None = None
    experiments: tuple[str, ...] = ()
    filter: str = ""
    sweep_name: str | None = None  # a sweep in the store, by name (no spec file at hand)

    def describe(self) -> str:
        parts = []
        if self.sweep:
            parts.append(f"sweep {self.sweep}")
        if self.sweep_name:
            parts.append(f"sweep {self.sweep_name!r}")
        if self.study:
            parts.append(f"study {self.study}")
        if self.experiments:
            parts.append(f"experiment(s) {', '.join(self.experiments)}")
        if self.filter:
            parts.append(f"filter {self.filter!r}")
        return "; ".join(parts)


@dataclass(frozen=True)
class ReportSpec:
    name: str
    selection: Selection
    group_by: tuple[str, ...] = DEFAULT_GROUP_BY
    compare_within: tuple[str, ...] = DEFAULT_COMPARE_WITHIN
    columns: tuple[str, ...] = ()  # empty: the default columns (calibexp.reports.columns)
    published: bool = True
    alpha: float = 0.05
    figure_epochs: tuple[int, ...] = ()  # empty: up to 5 spread over the logged diagram epochs
    figure_metrics: tuple[str, ...] = DEFAULT_FIGURE_METRICS
    spec_file: Path | None = field(default=None, compare=False)
    # group_by named by the user: a key varying within its rows is refused, not added
    group_by_given: bool = field(default=False, compare=False)

    @property
    def group_params(self) -> list[str]:
        """The run params (flattened config keys) of ``group_by``, in its order."""
        return [param_key(k) for k in self.group_by]

    def block_of(self, group: tuple[str, ...]) -> tuple[str, ...]:
        """A group's values of the ``compare_within`` keys: the block of rows it is judged in."""
        params = self.group_params
        return tuple(group[params.index(param_key(k))] for k in self.compare_within)


def param_key(name: str) -> str:
    """The flattened config key (a run's param name) of a group key."""
    return GROUP_ALIASES.get(name, name)


def parse_selection(text: str, root: Path | None = None) -> Selection | Path:
    """A ``select`` string as a ``Selection``, or the path of a report spec to read."""
    root = root or Path.cwd()
    text = text.strip()
    if not text:
        raise CalibexpError(
            "select is empty; pass sweep:<spec.yaml>, study:<name>, experiment:<name>, "
            "filter:<MLflow filter> or a report spec such as studies/report_demo.yaml"
        )
    if text.endswith((".yaml", ".yml")) and ":" not in text.split("/")[0]:
        path = root / text
        raw, _ = read_yaml_mapping(path, "report or sweep spec", "studies/report_demo.yaml")
        return Selection(sweep=path) if "configs" in raw else path
    found: dict[str, str] = {}
    for part in _parts(text):
        kind, sep, value = part.partition(":")
        kind, value = kind.strip(), value.strip()
        if not sep or kind not in SELECT_KINDS:
            raise CalibexpError(
                f"select part {part!r}: expected <kind>:<value> with kind one of "
                f"{', '.join(SELECT_KINDS)}{closest(kind, SELECT_KINDS)}"
            )
        if kind in found:
            raise CalibexpError(f"select names {kind}: twice ({text!r})")
        if not value:
            raise CalibexpError(f"select part {part!r}: {kind}: needs a value")
        found[kind] = value
    if sum(k in found for k in ("sweep", "study")) > 1:
        raise CalibexpError(f"select {text!r}: a sweep or a study, not both")
    sweep, sweep_name = None, None
    if "sweep" in found:  # a spec file, or else the name of a sweep in the store
        sweep = root / found["sweep"]
        if found["sweep"].endswith((".yaml", ".yml")) and not sweep.is_file():
            raise CalibexpError(f"sweep spec not found: {sweep}; e.g. studies/sweep_demo.yaml")
        if not sweep.is_file():
            sweep, sweep_name = None, found["sweep"]
    experiments = tuple(e.strip() for e in found.get("experiment", "").split(",") if e.strip())
    return Selection(
        sweep, found.get("study"), experiments, found.get("filter", ""), sweep_name=sweep_name
    )


def _parts(text: str) -> list[str]:
    """``a:x; b:y`` split at the semicolons outside quotes (a filter may quote one); written
    out because shlex only honours a quote at the start of a token."""
    parts, current, quote = [], "", ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"`":
            quote = ch
        elif ch == ";":
            parts.append(current)
            current = ""
            continue
        current += ch
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def load_report_spec(path: Path, root: Path | None = None) -> ReportSpec:
    where = f"report spec {path}"
    raw, _ = read_yaml_mapping(path, "report spec", "studies/report_demo.yaml")
    require_known_keys(raw, SPEC_KEYS, where)
    if not isinstance(raw.get("select"), str):
        raise CalibexpError(f"{where}: 'select' is required, e.g. sweep:studies/sweep_demo.yaml")
    selection = parse_selection(raw["select"], root)
    if isinstance(selection, Path):
        raise CalibexpError(f"{where}: select names another report spec; name runs instead")
    figures = raw.get("figures") or {}
    if not isinstance(figures, dict) or any(k not in FIGURE_KEYS for k in figures):
        raise CalibexpError(f"{where}: figures {figures!r}, expected keys {FIGURE_KEYS}")
    spec = ReportSpec(
        name=_text(raw.get("name", path.stem), "name", where),
        selection=selection,
        group_by=_names(raw.get("group_by", list(DEFAULT_GROUP_BY)), "group_by", where),
        group_by_given="group_by" in raw,
        compare_within=_names(
            raw.get("compare_within", list(DEFAULT_COMPARE_WITHIN)), "compare_within", where
        ),
        columns=_columns(raw.get("columns", "default"), where),
        published=_flag(raw.get("published", True), "published", where),
        alpha=_alpha(raw.get("alpha", 0.05), where),
        figure_epochs=_epochs(figures.get("epochs", []), where),
        figure_metrics=_names(
            figures.get("metrics", list(DEFAULT_FIGURE_METRICS)), "figures.metrics", where
        ),
        spec_file=path,
    )
    return checked(spec, where)


def report_spec(
    select: str,
    name: str = "",
    group_by: str = "",
    columns: str = "",
    compare_within: str = "",
    published: str = "",
    root: Path | None = None,
) -> ReportSpec:
    """The spec of ``-P select=…`` and the other command-line settings (each empty: the spec
    file's value, or the default)."""
    selection = parse_selection(select, root)
    if isinstance(selection, Path):
        spec = load_report_spec(selection, root)
    else:
        spec = ReportSpec(name=name or _default_name(selection), selection=selection)
    changes: dict[str, Any] = {}
    if name:
        changes["name"] = name
    if group_by.strip():
        changes["group_by"] = tuple(_words(group_by))
        changes["group_by_given"] = True
        # blocks of the keys still grouped by, unless named too
        changes["compare_within"] = tuple(
            k for k in spec.compare_within if k in changes["group_by"]
        )
    if compare_within.strip():
        changes["compare_within"] = tuple(_words(compare_within))
    if columns.strip():
        changes["columns"] = _columns(_words(columns), "columns")
    if published.strip():
        changes["published"] = _flag(published.strip().lower(), "published", "published")
    return checked(replace(spec, **changes), "report")


def checked(spec: ReportSpec, where: str) -> ReportSpec:
    if not spec.group_by:
        raise CalibexpError(f"{where}: group_by is empty; e.g. {' '.join(DEFAULT_GROUP_BY)}")
    if "seed" in spec.group_by or "seed" in map(param_key, spec.group_by):
        raise CalibexpError(f"{where}: group_by names seed; the report aggregates over seeds")
    outside = [k for k in spec.compare_within if k not in spec.group_by]
    if outside:
        raise CalibexpError(
            f"{where}: compare_within {outside} not in group_by {list(spec.group_by)}; "
            "blocks of rows are made of group keys"
        )
    return spec


def _default_name(selection: Selection) -> str:
    if selection.sweep:
        return f"report-{selection.sweep.stem}"
    if selection.sweep_name:
        return f"report-{selection.sweep_name}"
    if selection.study:
        return f"report-{selection.study}"
    if selection.experiments:
        return f"report-{'+'.join(selection.experiments)}"
    return "report"


def _words(text: str) -> list[str]:
    return [w for w in text.replace(",", " ").split() if w]


def _text(value: Any, key: str, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise CalibexpError(f"{where}: '{key}' {value!r}, expected a non-empty string")
    return value


def _names(value: Any, key: str, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = _words(value)
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise CalibexpError(f"{where}: '{key}' {value!r}, expected a list of names")
    if len(set(value)) != len(value):
        raise CalibexpError(f"{where}: '{key}' {value!r} names a key twice")
    return tuple(value)


def _columns(value: Any, where: str) -> tuple[str, ...]:
    if value == "default" or value == ["default"]:
        return ()
    return _names(value, "columns", where)


def _flag(value: Any, key: str, where: str) -> bool:
    if value in (True, "true"):
        return True
    if value in (False, "false"):
        return False
    raise CalibexpError(f"{where}: '{key}' {value!r}, expected true or false")


def _alpha(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise CalibexpError(f"{where}: 'alpha' {value!r}, expected a number in (0, 1)")
    return float(value)


def _epochs(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(
        isinstance(e, int) and not isinstance(e, bool) and e >= 0 for e in value
    ):
        raise CalibexpError(
            f"{where}: figures.epochs {value!r}, expected 0-based epoch numbers, e.g. [0, 9, 19]"
        )
    return tuple(sorted(set(value)))
