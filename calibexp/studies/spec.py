"""Study specs (``studies/*.yaml``): what to tune, against what, with which sampler, pruner and
budget, validated in full before any trial starts.

    name: safcl-lambda-gamma
    base: configs/digits/small_cnn/safcl.yaml      # run config(s); paths relative to the repo
    overrides: [train.epochs=10]                    # applied to every trial
    space:
      loss.lam: {type: float, low: 0.1, high: 10, log: true}
      loss.gamma_focal: {type: float, low: 0, high: 5}
      loss.gamma: {type: categorical, choices: [1, 2, 3], when: {loss.name: focal}}
    objectives: [{metric: val/nll, direction: minimize}]   # one, or two for a Pareto front
    sampler: {name: tpe, seed: 0}                   # calibexp.studies.samplers.SAMPLERS
    pruner: {name: median, n_warmup_steps: 2}       # calibexp.studies.samplers.PRUNERS
    n_trials: 20                                    # and/or timeout_s
    storage: null                           # null: sqlite:///optuna.db; or a SQLAlchemy URL
    heartbeat_s: 30                         # a worker silent for 3x this has its trial retried

``when`` makes a parameter conditional: it is sampled only when the named earlier categorical
parameter took that value. An objective must be a metric the base config logs every epoch,
spelled as it logs it (``val/ece_10`` when the base sets ``eval.ece_bins: 10``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from calibexp.config import (
    ExperimentConfig,
    config_paths,
    load_config,
    override,
    shown_path,
    structured,
)
from calibexp.errors import CalibexpError
from calibexp.registry import Registry, closest
from calibexp.studies.samplers import PRUNERS, SAMPLERS
from calibexp.yaml_files import read_yaml_mapping, require_known_keys

ParameterType = Literal["float", "int", "categorical"]
Direction = Literal["minimize", "maximize"]
TOP_KEYS = (
    "name",
    "base",
    "overrides",
    "space",
    "objectives",
    "sampler",
    "pruner",
    "n_trials",
    "timeout_s",
    "storage",
    "heartbeat_s",
)


@dataclass(frozen=True)
class Parameter:
    key: str
    type: ParameterType
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()
    when: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StudySpec:
    name: str
    base: tuple[Path, ...]  # run configs merged in order
    overrides: tuple[str, ...]
    space: tuple[Parameter, ...]
    metrics: tuple[str, ...]
    directions: tuple[Direction, ...]
    sampler: Any  # SAMPLERS.schema(name) instance: name plus its settings
    pruner: Any  # PRUNERS.schema(name) instance
    n_trials: int | None
    timeout_s: float | None
    storage: str | None
    heartbeat_s: float  # worker heartbeat; a trial silent for 3x this is failed and retried
    digest: str  # of the spec file's content: which spec a study was run with
    path: str = ""  # the spec file, as given
    text: str = ""  # its content, logged to the study's parent run

    def described(self) -> dict[str, str]:
        """The spec as the study parent's params: search space, objectives, sampler, pruner
        and budget (``space.<key>`` one per tuned key)."""
        params = {
            "study.spec": shown_path(self.path) if self.path else "",
            "study.base": " ".join(shown_path(str(p)) for p in self.base),
            "study.objectives": ", ".join(
                f"{m} ({d})" for m, d in zip(self.metrics, self.directions)
            ),
            "study.sampler": _settings(self.sampler),
            "study.pruner": _settings(self.pruner),
            "study.n_trials": str(self.n_trials),
            "study.timeout_s": str(self.timeout_s),
        }
        for p in self.space:
            if p.type == "categorical":
                shown = f"categorical {list(p.choices)}"
            else:
                shown = f"{p.type} [{p.low:g}, {p.high:g}]" + (" log" if p.log else "")
                shown += f" step {p.step:g}" if p.step else ""
            shown += f" when {p.when}" if p.when else ""
            params[f"space.{p.key}"] = shown
        return params

    @property
    def multi_objective(self) -> bool:
        return len(self.metrics) > 1


def _settings(component: Any) -> str:
    """``median(n_startup_trials=4, n_warmup_steps=3)``."""
    values = {k: v for k, v in dataclasses.asdict(component).items() if k != "name"}
    return f"{component.name}({', '.join(f'{k}={v}' for k, v in values.items())})"


def load_spec(path: str | Path, root: Path | None = None) -> StudySpec:
    raw, text = read_yaml_mapping(path, "study spec", "studies/smoke.yaml")
    where = f"study spec {path}"
    require_known_keys(raw, TOP_KEYS, where)
    name = _required(raw, "name", where)
    root = root or Path.cwd()
    base = tuple(root / p for p in config_paths(_required(raw, "base", where)))
    overrides = tuple(str(o) for o in raw.get("overrides") or ())
    try:
        base_cfg = load_config(base, list(overrides))
    except CalibexpError as err:
        raise CalibexpError(f"{where}: base: {err}") from None
    if not isinstance(raw.get("space") or {}, dict):
        raise CalibexpError(f"{where}: 'space' must map config keys to ranges")
    space = tuple(_parameter(key, value, where) for key, value in (raw.get("space") or {}).items())
    _check_conditions(space, where)
    if not space:
        raise CalibexpError(f"{where}: 'space' is empty; name at least one config key to tune")
    if any(parameter.key == "eval.ece_bins" for parameter in space):
        raise CalibexpError(
            f"{where}: space.eval.ece_bins: the bin count is part of the objective's name "
            "(val/ece_15), so a study cannot tune it; set it in overrides instead"
        )
    metrics, directions = _objectives(raw.get("objectives"), base_cfg, where)
    sampler = _component(SAMPLERS, raw.get("sampler") or {"name": "tpe"}, where)
    pruner = _component(PRUNERS, raw.get("pruner") or {"name": "none"}, where)
    if len(metrics) > 1 and pruner.name != "none":
        raise CalibexpError(
            f"{where}: a two-objective study cannot prune (Optuna's pruners are single-objective); "
            "set pruner: {name: none}"
        )
    n_trials, timeout_s = raw.get("n_trials"), raw.get("timeout_s")
    for key in ("timeout_s", "heartbeat_s"):
        value = raw.get(key)
        if value is not None and (not isinstance(value, (int, float)) or value <= 0):
            raise CalibexpError(f"{where}: {key} {value!r}, expected a number of seconds > 0")
    if n_trials is None and timeout_s is None:
        raise CalibexpError(f"{where}: give a budget: n_trials and/or timeout_s")
    if n_trials is not None and (not isinstance(n_trials, int) or n_trials < 1):
        raise CalibexpError(f"{where}: n_trials {n_trials!r}, expected an integer >= 1")
    spec = StudySpec(
        name=str(name),
        base=base,
        overrides=overrides,
        space=space,
        metrics=metrics,
        directions=directions,
        sampler=sampler,
        pruner=pruner,
        n_trials=n_trials,
        timeout_s=timeout_s,
        storage=raw.get("storage"),
        heartbeat_s=float(raw.get("heartbeat_s", 30)),
        digest=hashlib.sha256(text.encode()).hexdigest()[:16],
        path=str(path),
        text=text,
    )
    check_keys_exist(spec)
    return spec


def _component(registry: Registry, raw: Any, where: str) -> Any:
    """``{name: ..., setting: ...}`` checked against the registered builder's settings."""
    kind = registry.kind
    if not isinstance(raw, dict) or "name" not in raw:
        raise CalibexpError(
            f"{where}: {kind} must be a mapping with a name (one of {', '.join(registry.names())})"
        )
    try:
        schema = registry.schema(str(raw["name"]))
    except CalibexpError as err:
        raise CalibexpError(f"{where}: {kind}.name: {err}") from None
    try:
        return structured(schema, raw, prefix=f"{kind}.")
    except CalibexpError as err:
        raise CalibexpError(f"{where}: {err}") from None


def _required(raw: dict, key: str, where: str) -> Any:
    if raw.get(key) in (None, ""):
        raise CalibexpError(f"{where}: '{key}' is required")
    return raw[key]


def _parameter(key: str, value: Any, where: str) -> Parameter:
    types = typing.get_args(ParameterType)
    if not isinstance(value, dict) or value.get("type") not in types:
        raise CalibexpError(f"{where}: space.{key} needs type: one of {' | '.join(types)}")
    kind = value["type"]
    when = dict(value.get("when") or {})
    if kind == "categorical":
        choices = tuple(value.get("choices") or ())
        if not choices:
            raise CalibexpError(f"{where}: space.{key} has no choices")
        return Parameter(key, kind, choices=choices, when=when)
    low, high = value.get("low"), value.get("high")
    if not isinstance(low, (int, float)) or not isinstance(high, (int, float)) or low >= high:
        raise CalibexpError(
            f"{where}: space.{key} range [{low}, {high}] is empty or inverted; "
            "expected numbers with low < high"
        )
    log = bool(value.get("log", False))
    if log and low <= 0:
        raise CalibexpError(f"{where}: space.{key} is log-scaled, so low must be > 0 (got {low})")
    if kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
        raise CalibexpError(f"{where}: space.{key} is an int range; low and high must be integers")
    step = value.get("step")
    if step is not None:
        if log:
            raise CalibexpError(f"{where}: space.{key}: a log-scaled range cannot have a step")
        whole = kind != "int" or float(step).is_integer()
        if not isinstance(step, (int, float)) or step <= 0 or not whole:
            raise CalibexpError(
                f"{where}: space.{key} step {step!r}, expected a positive "
                f"{'integer' if kind == 'int' else 'number'}"
            )
    return Parameter(key, kind, low, high, log, step, when=when)


def _objectives(
    raw: Any, base: ExperimentConfig, where: str
) -> tuple[tuple[str, ...], tuple[Direction, ...]]:
    """The objectives, each a metric every trial logs each epoch under that very name."""
    from calibexp.training import epoch_metric_keys

    if not isinstance(raw, list) or not 1 <= len(raw) <= 2:
        raise CalibexpError(
            f"{where}: 'objectives' must list one or two {{metric, direction}} entries"
        )
    known = epoch_metric_keys(base)
    metrics, directions = [], []
    for entry in raw:
        if not isinstance(entry, dict):
            raise CalibexpError(
                f"{where}: objectives entry {entry!r}, expected {{metric: ..., direction: ...}}"
            )
        metric, direction = entry.get("metric"), entry.get("direction", "minimize")
        if metric not in known:
            raise CalibexpError(
                f"{where}: objective metric '{metric}' is not logged by the base config's runs "
                f"(eval.ece_bins = {base.eval.ece_bins}){closest(str(metric), known)}; "
                f"logged every epoch: {', '.join(known)}"
            )
        if direction not in typing.get_args(Direction):
            raise CalibexpError(
                f"{where}: direction {direction!r}, expected "
                + " | ".join(typing.get_args(Direction))
            )
        metrics.append(metric)
        directions.append(direction)
    return tuple(metrics), tuple(directions)


def _check_conditions(space: tuple[Parameter, ...], where: str) -> None:
    """``when: {key: value}`` must name an earlier categorical parameter and one of its
    choices, or the parameter would silently never be sampled."""
    earlier: dict[str, Parameter] = {}
    for parameter in space:
        for key, value in parameter.when.items():
            source = earlier.get(key)
            if source is None or source.type != "categorical" or value not in source.choices:
                raise CalibexpError(
                    f"{where}: space.{parameter.key} when {{{key}: {value!r}}}: expected an "
                    "earlier categorical parameter of the space and one of its choices"
                )
        earlier[parameter.key] = parameter


def sample_values(parameter: Parameter) -> list[Any]:
    """Values that span the parameter's range (both ends, every choice), for checking keys and
    ranges before any trial."""
    if parameter.type == "categorical":
        return list(parameter.choices)
    cast = int if parameter.type == "int" else float
    return [cast(parameter.low), cast(parameter.high)]


def check_keys_exist(spec: StudySpec) -> None:
    """Load the base config with every space key set once: an unknown key, a wrong type or an
    out-of-range value fails here, naming the key, before any trial starts."""
    for parameter in spec.space:
        conditions = [override(k, v) for k, v in parameter.when.items()]
        for sample in sample_values(parameter):
            try:
                load_config(
                    spec.base, [*spec.overrides, *conditions, override(parameter.key, sample)]
                )
            except CalibexpError as err:
                raise CalibexpError(f"study {spec.name}: space.{parameter.key}: {err}") from None
