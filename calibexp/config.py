"""Run configs: YAML with ``_base_`` inheritance, dotted overrides, one frozen validated object.

    cfg = load_config("configs/demo.yaml", ["optim.lr=0.05", "train.epochs=2"])

Flow (OmegaConf does the parsing, merging, interpolation and type checking; this module adds
what it lacks):

1. ``_base_`` (a path or a list of paths, relative to the file) is loaded recursively, then
   deep-merged in order, the child last. A file that names a ``protocol`` (calibexp.protocols)
   gets that protocol's settings between its bases and its own keys. Mappings merge; lists and
   scalars replace. A cycle is an error. When a component section (``data``, ``model``,
   ``loss``, ``optim``, ``schedule``) changes its ``name``, the section is replaced, not merged,
   so ``loss: {name: ce}`` over a ``focal`` base cannot inherit a stray ``gamma``.
2. Dotted overrides ``key=value`` are parsed as YAML values (``3``, ``0.1``, ``[150, 250]``,
   ``null``) and merged on top with the same rule; ``protocol=<name>`` merges the protocol's
   settings there.
3. The result is validated against the schema: the static sections below, and for each
   component the keyword-only hyper-parameters of the registered builder it names
   (``calibexp.registry``). Unknown keys and wrong types fail here, naming the key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from calibexp.errors import CalibexpError, require
from calibexp.protocols import DEFAULT_PROTOCOL, PROTOCOLS, protocol_settings
from calibexp.registry import closest
from calibexp.yaml_files import read_yaml_mapping

# Closed choices: the type is the schema, and a value outside it is refused naming the choices.
Precision = Literal["auto", "fp32", "bf16"]  # auto: bf16 autocast on CUDA, fp32 elsewhere
BestMode = Literal["min", "max"]
TestCheckpoint = Literal["last", "best"]  # last: torrvision's protocol; best: meta-calibration's
# mean: every loss a batch mean (calibexp); sum: B x that, as torrvision's loss_mean=False, for
# each loss whose reference sums it (``CalibrationLoss.sums_over_batch``; Brier stays a mean).
LossReduction = Literal["mean", "sum"]
# When the LR schedule steps: after each epoch (PyTorch >= 1.1's order), or before it, as the
# references call scheduler.step() at the start of each epoch, which moves each drop one epoch
# earlier (milestones 150, 250 drop at epochs 149, 249).
LrStep = Literal["epoch_end", "epoch_start"]
# torch.compile's mode for train.compile; auto: reduce-overhead (CUDA graphs) on CUDA, default
# elsewhere (CUDA graphs exist only on CUDA).
CompileMode = Literal[
    "auto", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"
]


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128
    grad_clip: Optional[float] = None  # global L2 norm; null = no clipping
    loss_reduction: LossReduction = "mean"
    lr_step: LrStep = "epoch_end"
    precision: Precision = "auto"
    progress: bool = True  # tqdm bar with loss / accuracy
    # Speed only (calibexp.execution): none of these changes what a run computes beyond
    # floating-point rounding, so none is part of the run key.
    compile: bool = False  # torch.compile the step's forward, loss and evidence sums
    compile_mode: CompileMode = "auto"
    # Fail an epoch at its first host-device sync inside the step loop (a new loss's .item(),
    # a boolean mask): CUDA's sync debug mode, or its CPU stand-in (calibexp.execution.syncs).
    check_syncs: bool = False

    def __post_init__(self) -> None:
        require(
            not (self.compile and self.check_syncs),
            "train.check_syncs",
            self.check_syncs,
            "false with train.compile=true (compiling synchronises by design; check the eager "
            "step, whose syncs are the compiled step's graph breaks)",
        )
        require(self.epochs >= 1, "train.epochs", self.epochs, "an integer >= 1")
        require(self.batch_size >= 1, "train.batch_size", self.batch_size, "an integer >= 1")
        require(
            self.grad_clip is None or self.grad_clip > 0,
            "train.grad_clip",
            self.grad_clip,
            "null or a positive norm",
        )


@dataclass(frozen=True)
class EvalConfig:
    batch_size: int = 1000
    ece_bins: int = 15
    best_metric: str = "val/nll"  # which epoch's weights become checkpoints/best.pt
    best_mode: BestMode = "min"
    test_checkpoint: TestCheckpoint = "last"  # the weights evaluated once on test
    val_every: int = 1  # the metric suite on val every N epochs (and always after the last)
    # A val reliability diagram every N val-evaluated epochs (from the first, and the last),
    # logged as the step-indexed image series reliability/val; 0 = none. Each is ~30-40 ms of
    # drawing and storing, done on the tracking thread.
    diagram_every: int = 1
    # The share of training wall time the val image series may take on the tracking thread
    # (calibexp.diagrams.FrameBudget; a frame is over 10% of a 0.27 s demo epoch on 2 CPU
    # cores): a frame due when more has been spent is left out, its table still logged; the
    # first and the last are always drawn. null = every diagram epoch.
    diagram_budget: Optional[float] = 0.02
    evolution_epochs: list[int] = field(default_factory=list)  # [] = up to 5, evenly spread
    # Post-hoc calibrators fitted on val; each logs test_<split>/... and <split>/temperature.
    calibrators: list[str] = field(default_factory=lambda: ["temperature", "temperature_grid_ece"])
    # Robustness sets (calibexp.data.shifted: svhn, cifar10_c, image_patches, digits_c)
    # evaluated at the end of training and logged into the run (ood/..., shift/...), as
    # `mlflow run . -e ood` does for a finished run; [] = none.
    ood: list[str] = field(default_factory=list)
    extra_corruptions: bool = False  # a shift set's extra corruptions too (CIFAR-10-C's 4)

    def __post_init__(self) -> None:
        require(self.batch_size >= 1, "eval.batch_size", self.batch_size, "an integer >= 1")
        require(self.ece_bins >= 1, "eval.ece_bins", self.ece_bins, "an integer >= 1")
        require(self.val_every >= 1, "eval.val_every", self.val_every, "an integer >= 1")
        require(
            self.diagram_every >= 0,
            "eval.diagram_every",
            self.diagram_every,
            "an integer >= 0 (0 = no per-epoch diagrams)",
        )
        require(
            self.diagram_budget is None or self.diagram_budget > 0,
            "eval.diagram_budget",
            self.diagram_budget,
            "a fraction > 0 of training time, or null (draw every diagram epoch)",
        )
        require(
            all(e >= 0 for e in self.evolution_epochs),
            "eval.evolution_epochs",
            self.evolution_epochs,
            "a list of epoch indices >= 0",
        )
        require(
            len(self.calibrators) >= 1 and len(set(self.calibrators)) == len(self.calibrators),
            "eval.calibrators",
            self.calibrators,
            "a non-empty list of distinct calibrator names",
        )
        from calibexp.data.shifted import SHIFTED  # late: the data package imports config

        for name in self.ood:
            if name not in SHIFTED.names():
                known = SHIFTED.names()
                raise CalibexpError(
                    f"eval.ood: unknown evaluation set '{name}'{closest(name, known)}; "
                    f"known: {', '.join(known)}"
                )
        require(len(set(self.ood)) == len(self.ood), "eval.ood", self.ood, "distinct set names")
        require(
            self.best_metric.startswith("val/"),
            "eval.best_metric",
            self.best_metric,
            "a val metric such as val/nll (never a test metric)",
        )

    def val_epochs(self, epochs: int) -> list[int]:
        """The epochs (0-based) after which the metric suite runs on val."""
        return [e for e in range(epochs) if (e + 1) % self.val_every == 0 or e == epochs - 1]

    def diagram_epochs(self, epochs: int) -> list[int]:
        """The val epochs that also draw a reliability diagram: the first, every
        ``diagram_every``-th after it, and the last."""
        if self.diagram_every == 0:
            return []
        val = self.val_epochs(epochs)
        return [e for i, e in enumerate(val) if i % self.diagram_every == 0 or e == val[-1]]


# The meta-objective on a meta-val batch: the reference's CE + β·DECE, or β·DECE alone (the
# multi-domain variant's).
MetaObjective = Literal["ce_dece", "dece"]
# How meta-val batches follow each other within an epoch: ``cycle`` replays the epoch's first
# pass (the reference's itertools.cycle caches it); ``reshuffle`` draws a new pass each time.
MetaReplay = Literal["cycle", "reshuffle"]
NO_META = "none"


@dataclass(frozen=True)
class MetaConfig:
    """Meta-calibration (Bohdal et al., TMLR 2023; calibexp.meta): ``name`` a meta-learner of
    calibexp.meta.learners, or ``none`` for a plain run. The defaults are the reference's."""

    name: str = NO_META
    lr: float = 1e-3  # Adam on the hyper-parameters
    weight_decay: float = 0.0  # Adam's (5e-5 in the multi-domain variant)
    beta: float = 0.5  # meta-loss = CE + beta·DECE (or beta·DECE: objective dece)
    objective: MetaObjective = "ce_dece"
    bins: int = 15  # DECE's soft bins M, ranking temperature t_a, binning temperature t_b
    t_a: float = 100.0
    t_b: float = 0.01
    per_domain: bool = False  # one ε vector per training domain (label_smoothing_vector)
    # The reference's quirks, each a switch (README "Meta-calibration"): the meta-loss's
    # gradient also reaches the model's weights (nothing zeroes them between its backward and
    # the training loss's); the meta-val forward updates BatchNorm's running statistics.
    leak_to_model: bool = True
    bn_from_meta_val: bool = True
    replay: MetaReplay = "cycle"

    def __post_init__(self) -> None:
        require(self.lr > 0, "meta.lr", self.lr, "> 0")
        require(self.weight_decay >= 0, "meta.weight_decay", self.weight_decay, ">= 0")
        require(self.beta >= 0, "meta.beta", self.beta, ">= 0")
        require(self.bins >= 1, "meta.bins", self.bins, "an integer >= 1")
        require(self.t_a > 0, "meta.t_a", self.t_a, "> 0")
        require(self.t_b > 0, "meta.t_b", self.t_b, "> 0")

    @property
    def enabled(self) -> bool:
        return self.name != NO_META


@dataclass(frozen=True)
class TrackingConfig:
    experiment: str = "calibexp"  # used when no MLflow run or experiment is handed to us
    run_name: Optional[str] = None  # None: {dataset}-{model}-{loss}-s{seed} (tracking/names.py)
    # The config file(s) the run was loaded from, as given (set by load_config; shown in the
    # run's description). Not part of the run key.
    config: Optional[str] = None
    # Seconds between writes of metrics and checkpoints (and always after the last epoch):
    # a killed run loses at most this much training. 0 = write after every epoch.
    flush_every_s: float = 10.0
    # Seconds between uploads of checkpoints/last.pt and best.pt (and always after the last
    # epoch): a CIFAR ResNet-50 last.pt with momentum is ~190 MB, which at every metric flush
    # would be ~19 MB/s per worker. A killed run resumes from the last one written; the epochs
    # it then trains again were logged already and are not logged twice. 0 = every flush.
    checkpoint_every_s: float = 120.0
    log_model: bool = False  # also register the final model with mlflow.pytorch.log_model
    # The run registry (calibexp.tracking.registry): the holder of a run renews its lease every
    # heartbeat_s from a timer thread; a RUNNING run whose lease is older than stale_after_s
    # (on the store's clock) is dead and taken over; a run is tried at most max_attempts times.
    heartbeat_s: float = 30.0
    stale_after_s: float = 300.0
    max_attempts: int = 3
    # How long a store that stops answering mid-run is waited for (training goes on meanwhile)
    # before the run gives up.
    store_timeout_s: float = 900.0

    def __post_init__(self) -> None:
        require(self.flush_every_s >= 0, "tracking.flush_every_s", self.flush_every_s, ">= 0")
        require(
            self.checkpoint_every_s >= 0,
            "tracking.checkpoint_every_s",
            self.checkpoint_every_s,
            ">= 0",
        )
        require(self.heartbeat_s > 0, "tracking.heartbeat_s", self.heartbeat_s, "> 0")
        require(
            self.stale_after_s >= 2 * self.heartbeat_s,
            "tracking.stale_after_s",
            self.stale_after_s,
            f">= 2 x tracking.heartbeat_s ({2 * self.heartbeat_s:g}): one late beat is not death",
        )
        require(self.max_attempts >= 1, "tracking.max_attempts", self.max_attempts, ">= 1")
        require(self.store_timeout_s > 0, "tracking.store_timeout_s", self.store_timeout_s, "> 0")


DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class ExperimentConfig:
    """One experiment. Component sections hold the registered builder's hyper-parameters."""

    data: Any
    model: Any
    loss: Any
    optim: Any
    schedule: Any
    protocol: str = DEFAULT_PROTOCOL  # calibexp.protocols: whose settings were merged in
    seed: int = 0
    deterministic: bool = False  # torch.use_deterministic_algorithms; slower on CUDA
    device: str = "auto"  # auto picks CUDA, then MPS, then CPU; or cpu | cuda | cuda:N | mps
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    meta: MetaConfig = field(default_factory=MetaConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def __post_init__(self) -> None:
        require(self.device.split(":")[0] in DEVICES, "device", self.device, " | ".join(DEVICES))
        require(self.protocol in PROTOCOLS, "protocol", self.protocol, " | ".join(PROTOCOLS))
        drawn = self.eval.diagram_epochs(self.train.epochs)
        require(
            set(self.eval.evolution_epochs) <= set(drawn),
            "eval.evolution_epochs",
            self.eval.evolution_epochs,
            f"epochs that draw a val diagram ({drawn})",
        )
        require(
            not (self.train.compile and self.meta.enabled),
            "train.compile",
            self.train.compile,
            "false with meta.enabled (meta-calibration's step differentiates through a "
            "gradient, create_graph=True, which torch.compile does not compile)",
        )


COMPONENTS = ("data", "model", "loss", "optim", "schedule")
# Keys that change how a run is carried out or recorded but not what it computes; they are left
# out of the run key so the same experiment on a GPU or with another run name is the same run.
NON_SEMANTIC = (
    "data.root",  # where this machine keeps the files, not which data
    "data.download",
    "device",
    "train.progress",
    "train.compile",
    "train.compile_mode",
    "train.check_syncs",
    "optim.fused",
    "eval.batch_size",
    "eval.diagram_every",
    "eval.diagram_budget",
    "eval.evolution_epochs",
    "eval.ood",  # evaluations added to the run: what it trains is the same
    "eval.extra_corruptions",
    "tracking",
)
# The NON_SEMANTIC keys that belong to the machine a run is on: a worker that resumes another
# machine's run uses its own values of these, not the dead worker's.
MACHINE_KEYS = (
    "data.root",
    "data.download",
    "device",
    "train.progress",
    "train.compile",
    "train.compile_mode",
    "train.check_syncs",
    "optim.fused",
    "eval.batch_size",
    "eval.diagram_budget",
    "tracking",
)


def component_registries() -> dict[str, Any]:
    # Imported here: the registries import torch, which the config layer itself does not need.
    from calibexp.data import DATASETS
    from calibexp.losses import LOSSES
    from calibexp.models import BACKBONES
    from calibexp.optim import OPTIMIZERS, SCHEDULES

    return {
        "data": DATASETS,
        "model": BACKBONES,
        "loss": LOSSES,
        "optim": OPTIMIZERS,
        "schedule": SCHEDULES,
    }


# ----------------------------------------------------------------------------- loading


def load_config(
    paths: str | Path | typing.Sequence[str | Path], overrides: typing.Sequence[str] = ()
) -> ExperimentConfig:
    """Load one config, or several merged in order (a list, or one string of paths separated
    by spaces: ``"configs/demo.yaml configs/_base_/losses/focal.yaml"``), each with its
    ``_base_`` chain; apply dotted ``overrides``; validate; freeze. A path that names a cell of
    the paper matrix (``configs/<dataset>/<model>/<loss>.yaml``) is composed from
    ``configs/matrix.yaml`` (``calibexp.matrix``), with the file at that path, if any, on top."""
    shown = " ".join(shown_path(p) for p in config_paths(paths))
    raw = OmegaConf.create({"tracking": {"config": shown}})
    for path in config_paths(paths):
        raw = _merge_layer(raw, _load_top(Path(path)))
    for item in overrides:
        raw = _merge_override(raw, item)
    return validate(raw)


def config_paths(paths: str | Path | typing.Sequence[str | Path]) -> list[str]:
    """The config paths of ``load_config``'s argument, in merge order."""
    listed = [paths] if isinstance(paths, (str, Path)) else list(paths)
    words = [word for item in listed for word in str(item).split()]
    if not words:
        raise CalibexpError("no config given; pass a YAML path such as configs/demo.yaml")
    return words


def shown_path(path: str) -> str:
    """A config path as it is recorded (``tracking.config``): relative to the MLflow project
    it lies in (the nearest folder above it with an ``MLproject`` file), so
    ``configs/demo.yaml`` reads the same whether given relative or absolute, from any working
    directory or checkout; absolute when it is in no project."""
    resolved = Path(path).resolve()
    for folder in resolved.parents:
        if (folder / "MLproject").is_file():
            return str(resolved.relative_to(folder))
    return str(resolved)


def config_from_dict(data: dict[str, Any]) -> ExperimentConfig:
    """Validate an already-resolved config (e.g. a run's logged ``config.yaml``)."""
    return validate(OmegaConf.create(data))


def _load_top(path: Path, chain: tuple[Path, ...] = ()) -> DictConfig:
    """A config file, or a cell of the paper matrix (with the file at its path on top): the
    same whether it is named on the command line or as another file's ``_base_``."""
    from calibexp.matrix import cell_of

    cell = cell_of(path)
    if cell is None:
        return _load_with_bases(path, chain)
    node = _with_bases(_node(cell, path), path, chain)
    if path.is_file():
        node = _merge_layer(node, _load_with_bases(path, chain))
    return node


def _load_with_bases(path: Path, chain: tuple[Path, ...]) -> DictConfig:
    path = path.resolve()
    if path in chain:
        loop = " -> ".join(p.name for p in (*chain, path))
        raise CalibexpError(f"_base_ cycle in configs: {loop}; remove one of these _base_ entries")
    data, _ = read_yaml_mapping(path, "config file", "configs/demo.yaml")
    return _with_bases(_node(data, path), path, chain)


def _node(data: dict[str, Any], path: Path) -> DictConfig:
    try:
        return OmegaConf.create(data)
    except OmegaConfBaseException as err:
        raise CalibexpError(f"config {path}: {err.msg}") from None


def _with_bases(node: DictConfig, path: Path, chain: tuple[Path, ...]) -> DictConfig:
    """``node`` (the content of ``path``) over its ``_base_`` files, loaded recursively."""
    bases = node.pop("_base_", [])
    bases = [bases] if isinstance(bases, str) else list(bases)
    merged = OmegaConf.create({})
    for base in bases:
        merged = _merge_layer(merged, _load_top(path.parent / str(base), (*chain, path.resolve())))
    return _merge_layer(_with_protocol(merged, node), node)


def _with_protocol(base: DictConfig, top: DictConfig) -> DictConfig:
    """``base`` with the settings of the protocol ``top`` names merged on (for the loss ``top``
    or else ``base`` holds); ``base`` itself when ``top`` names none."""
    if "protocol" not in top:
        return base
    loss = top.get("loss") if isinstance(top.get("loss"), DictConfig) else None
    if loss is None or "name" not in loss:
        loss = base.get("loss") if isinstance(base.get("loss"), DictConfig) else None
    loss_name = loss.get("name") if loss is not None else None
    layer = OmegaConf.create(protocol_settings(top.get("protocol"), loss_name))
    return _merge_layer(base, layer)


def _merge_override(raw: DictConfig, item: str) -> DictConfig:
    """One dotted override merged on ``raw`` (after the protocol it names, if any)."""
    layer = _parse_override(item)
    return _merge_layer(_with_protocol(raw, layer), layer)


def _merge_layer(base: DictConfig, top: DictConfig) -> DictConfig:
    """OmegaConf.merge, except that a component whose ``name`` changes is replaced whole."""
    base = base.copy()
    for section in COMPONENTS:
        new, old = top.get(section), base.get(section)
        if isinstance(new, DictConfig) and isinstance(old, DictConfig):
            if "name" in new and new.get("name") != old.get("name"):
                base.pop(section)
    return typing.cast(DictConfig, OmegaConf.merge(base, top))


def _parse_override(item: str) -> DictConfig:
    key, sep, _ = item.partition("=")
    if not sep or not key or " " in key:
        raise CalibexpError(
            f"override '{item}' is not of the form dotted.key=value (e.g. optim.lr=0.05)"
        )
    try:
        return OmegaConf.from_dotlist([item])
    except OmegaConfBaseException as err:
        raise CalibexpError(f"override '{item}': {err}") from None


# ----------------------------------------------------------------------------- validation


def validate(raw: DictConfig) -> ExperimentConfig:
    try:
        resolved = OmegaConf.to_container(raw, resolve=True)
    except OmegaConfBaseException as err:
        raise CalibexpError(f"config interpolation failed: {err.msg}") from None
    assert isinstance(resolved, dict)
    known = [f.name for f in dataclasses.fields(ExperimentConfig)]
    for key in resolved:
        if key not in known:
            raise CalibexpError(
                f"unknown config key '{key}'{closest(str(key), known)}; top-level keys: "
                f"{', '.join(known)}"
            )
    sections: dict[str, Any] = {}
    registries = component_registries()
    for section in COMPONENTS:
        value = resolved.pop(section, None)
        if not isinstance(value, dict) or "name" not in value:
            raise CalibexpError(
                f"config section '{section}' needs a 'name:' (one of "
                f"{', '.join(registries[section].names())})"
            )
        schema = registries[section].schema(str(value["name"]))
        sections[section] = structured(schema, value, prefix=f"{section}.")
    for section, schema in (
        ("train", TrainConfig),
        ("eval", EvalConfig),
        ("meta", MetaConfig),
        ("tracking", TrackingConfig),
    ):
        sections[section] = structured(
            schema, resolved.pop(section, None) or {}, prefix=f"{section}."
        )
    top = {k: v for k, v in resolved.items()}
    for key, value in top.items():
        expected = typing.get_type_hints(ExperimentConfig)[key]
        if not isinstance(value, expected) or isinstance(value, bool) != (expected is bool):
            raise CalibexpError(
                f"config key '{key}': got {value!r} ({type(value).__name__}), "
                f"expected {expected.__name__}"
            )
    cfg = ExperimentConfig(**sections, **top)
    _dry_build(cfg, registries)
    return cfg


def _dry_build(cfg: ExperimentConfig, registries: dict[str, Any]) -> None:
    """Build the cheap components once, so their builders' range checks (lr > 0, γ >= 0, ...)
    fail at config time, before a run exists. Data and model are checked when built, which
    ``run_experiment`` also does before it opens a run."""
    import torch

    from calibexp.registry import hyperparameters

    registries["loss"].build(cfg.loss.name, **hyperparameters(cfg.loss))
    dummy = [torch.nn.Parameter(torch.zeros(1))]
    optimizer = registries["optim"].build(cfg.optim.name, dummy, **hyperparameters(cfg.optim))
    registries["schedule"].build(cfg.schedule.name, optimizer, **hyperparameters(cfg.schedule))
    from calibexp.metrics import CALIBRATORS
    from calibexp.metrics.suite import suite_keys

    logged = suite_keys("val", cfg.eval.ece_bins)
    if cfg.eval.best_metric not in logged:
        raise CalibexpError(
            f"config key 'eval.best_metric': got '{cfg.eval.best_metric}', which this config "
            f"does not log (eval.ece_bins = {cfg.eval.ece_bins})"
            f"{closest(cfg.eval.best_metric, logged)}; val metrics: {', '.join(logged)}"
        )

    for name in cfg.eval.calibrators:
        try:
            CALIBRATORS.get(name)
        except CalibexpError as err:
            raise CalibexpError(f"eval.calibrators: {err}") from None
    _check_meta(cfg)


def _check_meta(cfg: ExperimentConfig) -> None:
    """A meta-learner that exists, fits the loss and has a meta-val split to learn on."""
    if not cfg.meta.enabled:
        return
    from calibexp.meta.learners import META_LEARNERS

    try:
        info = META_LEARNERS.info(cfg.meta.name)
    except CalibexpError as err:
        raise CalibexpError(f"meta.name: {err} (or none)") from None
    if not info.get("adds_to_loss") and cfg.loss.name != "ce":
        raise CalibexpError(
            f"meta.name={cfg.meta.name} trains on its own label-smoothed cross-entropy, so "
            f"loss.name={cfg.loss.name} would be ignored; set loss.name=ce (or meta.name=l2_head, "
            "which adds to the loss)"
        )
    if cfg.meta.per_domain and not info.get("per_domain"):
        raise CalibexpError(
            f"meta.per_domain=true needs meta.name=label_smoothing_vector (one ε vector per "
            f"domain), not {cfg.meta.name}"
        )
    held_out = getattr(cfg.data, "meta_val_size", 0)
    if not held_out:
        raise CalibexpError(
            f"meta.name={cfg.meta.name} learns on a meta-val split, but data.meta_val_size is "
            f"{held_out}; set data.meta_val_size > 0 (protocol=metacal makes it as large as val)"
        )


def structured(schema: type, values: dict[str, Any], prefix: str) -> Any:
    """``values`` checked against the dataclass ``schema`` and built into it; an unknown key or a
    wrong type is refused naming ``prefix`` + the key and what it expects."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), values)
        return OmegaConf.to_object(merged)
    except ConfigKeyError as err:
        valid = [f.name for f in dataclasses.fields(schema)]
        raise CalibexpError(
            f"unknown config key '{prefix}{err.key}'{closest(str(err.key), valid)}; "
            f"valid keys: {', '.join(prefix + v for v in valid)}"
        ) from None
    except ValidationError as err:
        key = str(err.key)
        expected = _type_name(typing.get_type_hints(schema).get(key))
        raise CalibexpError(
            f"config key '{prefix}{err.full_key}': got {values.get(key)!r} "
            f"({type(values.get(key)).__name__}), expected {expected}"
        ) from None


def _type_name(hint: Any) -> str:
    if hint is None:
        return "?"
    if typing.get_origin(hint) is Literal:
        return "one of " + " | ".join(str(choice) for choice in typing.get_args(hint))
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is typing.Union:
        return f"null or {_type_name(args[0])}"
    if typing.get_origin(hint) is list:
        return f"a list of {_type_name(args[0])}"
    return getattr(hint, "__name__", str(hint))


# ----------------------------------------------------------------------------- export


def to_dict(cfg: ExperimentConfig) -> dict[str, Any]:
    """The resolved config as plain data; ``config_from_dict(to_dict(cfg)) == cfg``."""
    return dataclasses.asdict(cfg)


def to_yaml(cfg: ExperimentConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def flatten(cfg: ExperimentConfig) -> dict[str, str]:
    """Dotted leaf keys -> strings, the form MLflow params take (lists as JSON)."""
    out: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, sub in value.items():
                walk(f"{prefix}{key}.", sub)
        else:
            out[prefix[:-1]] = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)

    walk("", to_dict(cfg))
    return out


def semantic_keys(flat: dict[str, str], meta_enabled: bool) -> dict[str, str]:
    """The keys of a flattened config that say what the run computes: ``NON_SEMANTIC`` keys
    left out and, for a plain run (``meta_enabled`` false), the meta section too (the keys runs
    had before it existed). What ``run_key`` hashes, and what a report compares."""
    skipped = NON_SEMANTIC if meta_enabled else (*NON_SEMANTIC, "meta")
    return {
        key: value
        for key, value in flat.items()
        if not any(key == skip or key.startswith(skip + ".") for skip in skipped)
    }


def run_key(cfg: ExperimentConfig) -> str:
    """A stable hash of what the run computes (``semantic_keys``)."""
    semantic = semantic_keys(flatten(cfg), cfg.meta.enabled)
    return hashlib.sha256(json.dumps(semantic, sort_keys=True).encode()).hexdigest()[:16]


def with_machine_keys(logged: ExperimentConfig, local: ExperimentConfig) -> ExperimentConfig:
    """``logged`` (the config a run was started with, on whatever machine) with this machine's
    ``MACHINE_KEYS`` from ``local``: where the data lives, which device, how to track. The run
    key is unchanged by construction."""
    merged, mine = to_dict(logged), to_dict(local)
    for dotted in MACHINE_KEYS:
        *parents, leaf = dotted.split(".")
        target, source = merged, mine
        for part in parents:
            target, source = target[part], source[part]
        if leaf in source:
            target[leaf] = source[leaf]
        else:  # the other dataset has no such key (digits have no data.root)
            target.pop(leaf, None)
    return config_from_dict(merged)


def with_overrides(cfg: ExperimentConfig, overrides: typing.Sequence[str]) -> ExperimentConfig:
    """``cfg`` with dotted ``overrides`` merged on top, validated again."""
    raw = OmegaConf.create(to_dict(cfg))
    for item in overrides:
        raw = _merge_override(raw, item)
    return validate(raw)


def override(key: str, value: Any) -> str:
    """The dotted override that sets ``key`` to ``value`` (``optim.lr=0.05``, ``a.b=[1, 2]``)."""
    text = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
    return f"{key}={text}"
