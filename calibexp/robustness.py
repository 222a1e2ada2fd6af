"""Robustness of a trained model, logged into its own run: out-of-distribution detection on OoD
sets and calibration under shift on corrupted test sets (``calibexp.data.shifted``).

Run at the end of training (``eval.ood``) or on any finished run (``mlflow run . -e ood``), with
the run's test weights and the temperature fitted on its val split (NLL, as ``ts/temperature``).
Each set is evaluated before (``ood/…``, ``shift/…``) and after (``ood_ts/…``, ``shift_ts/…``)
temperature scaling.

- **OoD set** (svhn, image_patches), against the run's clean test split, for every score of
  ``OOD_SCORES`` (higher = more OoD): ``ood/<set>/<score>/{auroc,aupr_in,aupr_out,fpr95}``.
- **Shift set** (cifar10_c, digits_c), for each corruption × severity 1-5: the metric suite
  (accuracy, NLL, Brier, ECE-15, smECE, …) as ``shift/<set>/<corruption>/<severity>/<metric>``,
  and ``…/auroc_msp``, the AUROC of −MSP between the clean test split and the corrupted one
  (the SA-FCL repository's corruption table); per severity the mean and the median over
  corruptions (``shift/<set>/{mean,median}/<severity>/<metric>``, the Uncertainty Baselines
  protocol) and the mean over every pair (``shift/<set>/mean/all/<metric>``).

Artifacts: the logits of every evaluated set with the clean test logits and the temperature
(``logits/ood/<set>.npz``, ``logits/shift/<set>.npz``: every number above can be recomputed),
a table per set (``tables/ood_<set>.json``, ``tables/shift_<set>.json``), the SA-FCL README's
table (``tables/robustness.json``: MSP AUROC ×100, no temperature, severity 5), and figures
(``plots/ood_<set>_scores.png``: each score's histogram, ID vs OoD; ``plots/shift_<set>.png``:
ECE and accuracy against severity).

A set whose files are missing or damaged is reported in one line and skipped; the run it
evaluates keeps its status and everything it logged before.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch

from calibexp.config import ExperimentConfig
from calibexp.data import DataBundle, DeviceLoader, Split
from calibexp.data.registry import DATASETS
from calibexp.data.shifted import SEVERITIES, SHIFTED
from calibexp.engine import autocast_for, predict
from calibexp.errors import CalibexpError
from calibexp.metrics import CALIBRATORS, Predictions, suite_of
from calibexp.metrics.ood import OOD_SCORES, detection_metrics, scores_of

CALIBRATOR = "temperature"  # the NLL-fitted temperature: the references' post-hoc calibrator
TABLE = "tables/robustness.json"
SEVERITY_OF_TABLE = 5  # the SA-FCL table's corruption severity
AUROC_MSP = "auroc_msp"


@dataclass
class Evaluated:
    """What the robustness evaluation needs of a trained model."""

    model: torch.nn.Module
    data: DataBundle
    autocast: Any
    batch_size: int
    device: torch.device
    set_params: dict[str, Any]  # data.root / data.download, for the sets that read files
    bins: int
    step: int  # the epoch of the weights: the step of every metric
    # The run's own val and test loaders (build_data's): val normalised as in training, test
    # (and every robustness set) as the run's test, which differs under CIFAR-100's
    # normalisation=torrvision.
    val_loader: DeviceLoader
    test_loader: DeviceLoader


def evaluated_of(
    cfg: ExperimentConfig,
    model: torch.nn.Module,
    data: DataBundle,
    device: torch.device,
    loaders: tuple[DeviceLoader, DeviceLoader],
    step: int,
) -> Evaluated:
    """What the robustness evaluation reads of a run of ``cfg`` whose weights are those of
    epoch ``step``; ``loaders`` are its (val, test) loaders."""
    set_params = {k: getattr(cfg.data, k) for k in ("root", "download") if hasattr(cfg.data, k)}
    return Evaluated(
        model=model,
        data=data,
        autocast=autocast_for(device, cfg.train.precision),
        batch_size=cfg.eval.batch_size,
        device=device,
        set_params=set_params,
        bins=cfg.eval.ece_bins,
        step=step,
        val_loader=loaders[0],
        test_loader=loaders[1],
    )


def require_sets(sets: list[str] | tuple[str, ...]) -> None:
    """Every name a registered evaluation set, or the one-line error naming the known ones."""
    for name in sets:
        SHIFTED.get(name)


def default_sets(dataset: str) -> tuple[str, ...]:
    """The robustness sets a run on ``dataset`` is evaluated on when none are named."""
    return tuple(DATASETS.info(dataset).get("robustness", ()))


def evaluate_robustness(
    run: Any, evaluated: Evaluated, sets: list[str] | tuple[str, ...], *, extra: bool = False
) -> tuple[dict[str, float], list[str]]:
    """Evaluate ``sets`` and log them into ``run`` (a ``TrackedRun``; the caller flushes).
    Returns the metrics logged and one line per set that could not be evaluated."""
    require_sets(sets)
    val_logits, val_targets = predict(evaluated.model, evaluated.val_loader, evaluated.autocast)
    test_logits, _ = predict(evaluated.model, evaluated.test_loader, evaluated.autocast)
    temperature = float(CALIBRATORS.build(CALIBRATOR, val_logits, val_targets, bins=evaluated.bins))
    metrics: dict[str, float] = {}
    table: dict[str, float] = {}
    errors: list[str] = []
    evaluated_sets = []
    for name in sets:
        try:
            if SHIFTED.info(name)["kind"] == "ood":
                found = _ood_set(run, evaluated, name, test_logits, temperature)
            else:
                found = _shift_set(run, evaluated, name, test_logits, temperature, extra)
        except CalibexpError as err:
            errors.append(str(err))  # the dataset's own line names it
            continue
        metrics.update(found)
        table.update(sa_fcl_table(evaluated.data.name, name, found))
        evaluated_sets.append(name)
    run.log_metrics(metrics, step=evaluated.step)
    run.write_metrics()  # queued before the table is read back: nothing computed is lost
    if table:  # beside what earlier evaluations of other sets put there, theirs replaced
        stems = tuple(f"auroc_{evaluated.data.name}_to_{name}" for name in evaluated_sets)
        kept = {k: v for k, v in _logged_table(run).items() if not k.startswith(stems)}
        run.log_json({**kept, **table}, TABLE)
    return metrics, errors


# ----------------------------------------------------------------------------- one set


def _predict(evaluated: Evaluated, split: Split) -> tuple[torch.Tensor, torch.Tensor]:
    """A robustness set's logits, its images normalised as the run's test split."""
    data = evaluated.data
    mean, std = data.test_normalisation or (data.mean, data.std)
    loader = DeviceLoader(split, evaluated.batch_size, evaluated.device, mean, std)
    return predict(evaluated.model, loader, evaluated.autocast)


def _logged_table(run: Any) -> dict[str, float]:
    """The run's ``tables/robustness.json`` so far: {} when there is none, or when it cannot be
    read back (said in one line: the new table then holds only this evaluation's sets)."""
    import json
    import tempfile

    from mlflow.exceptions import MlflowException

    run.flush()  # an earlier write of it through this handle must be in the store first
    try:
        if not any(a.path == TABLE for a in run.client.list_artifacts(run.run_id, "tables")):
            return {}
        with tempfile.TemporaryDirectory() as tmp:
            with open(run.client.download_artifacts(run.run_id, TABLE, tmp)) as handle:
                logged = json.load(handle)
    except (OSError, ValueError, MlflowException) as err:
        print(f"calibexp: the earlier {TABLE} could not be read back ({err}); replaced", flush=True)
        return {}
    return logged if isinstance(logged, dict) else {}


def _build(evaluated: Evaluated, name: str, **params: Any) -> Split:
    builder = SHIFTED.get(name)
    accepted = inspect.signature(builder).parameters
    given = {k: v for k, v in evaluated.set_params.items() if k in accepted}
    split = builder(evaluated.data.test, **given, **params)
    expected = tuple(evaluated.data.test.images.shape[1:])
    if tuple(split.images.shape[1:]) != expected:
        raise CalibexpError(
            f"{name}: its images are {tuple(split.images.shape[1:])}, the model takes {expected} "
            f"({evaluated.data.name}); evaluate a run on a dataset of that image shape"
        )
    return split


def _ood_set(
    run: Any, evaluated: Evaluated, name: str, test_logits: torch.Tensor, temperature: float
) -> dict[str, float]:
    split = _build(evaluated, name)
    logits, targets = _predict(evaluated, split)
    metrics, rows = {}, []
    for variant, t in (("ood", 1.0), ("ood_ts", temperature)):
        id_scores = scores_of(test_logits / t, OOD_SCORES.names())
        ood_scores = scores_of(logits / t, OOD_SCORES.names())
        for score in OOD_SCORES.names():
            found = detection_metrics(id_scores[score], ood_scores[score])
            metrics.update({f"{variant}/{name}/{score}/{k}": v for k, v in found.items()})
            rows.append({"variant": variant, "score": score, **found})
        if variant == "ood":
            aurocs = {row["score"]: row["auroc"] for row in rows}
            run.log_figure(
                partial(_score_histograms, name, id_scores, ood_scores, aurocs),
                f"plots/ood_{name}_scores.png",
            )
    run.log_json(rows, f"tables/ood_{name}.json")
    run.log_arrays(
        {
            "logits": logits.cpu().numpy(),
            "targets": targets.cpu().numpy(),
            "id_logits": test_logits.cpu().numpy(),
            "temperature": np.float64(temperature),
        },
        f"logits/ood/{name}.npz",
    )
    return metrics


def _shift_set(
    run: Any,
    evaluated: Evaluated,
    name: str,
    test_logits: torch.Tensor,
    temperature: float,
    extra: bool,
) -> dict[str, float]:
    if evaluated.data.domain_names:
        raise CalibexpError(
            f"{name}: run on {evaluated.data.name} holds several domains "
            f"({', '.join(evaluated.data.domain_names)}), which its per-domain test metrics "
            "already cover; a shift set evaluates a run on one domain"
        )
    info = SHIFTED.info(name)
    corruptions = [*info["corruptions"], *(info["extra"] if extra else ())]
    arrays: dict[str, np.ndarray] = {
        "id_logits": test_logits.cpu().numpy(),
        "temperature": np.float64(temperature),
    }
    variants = (("shift", 1.0), ("shift_ts", temperature))
    clean = {v: scores_of(test_logits / t, ["msp"])["msp"] for v, t in variants}  # once
    rows = []
    for corruption in corruptions:
        for severity in SEVERITIES:
            split = _build(evaluated, name, corruption=corruption, severity=severity)
            logits, targets = _predict(evaluated, split)
            arrays[f"logits_{corruption}_{severity}"] = logits.cpu().numpy()
            arrays[f"targets_{corruption}_{severity}"] = targets.cpu().numpy()
            for variant, t in variants:
                found = suite_of(Predictions(logits / t, targets), bins=evaluated.bins)
                shifted = scores_of(logits / t, ["msp"])["msp"]
                found[AUROC_MSP] = detection_metrics(clean[variant], shifted)["auroc"]
                rows.append(
                    {"variant": variant, "corruption": corruption, "severity": severity, **found}
                )
    metrics = shift_metrics(name, rows, info["corruptions"])
    run.log_json(rows, f"tables/shift_{name}.json")
    run.log_arrays(arrays, f"logits/shift/{name}.npz")
    curves = partial(_severity_curves, name, rows, evaluated.bins, tuple(info["corruptions"]))
    run.log_figure(curves, f"plots/shift_{name}.png")
    return metrics


def shift_metrics(
    name: str, rows: list[dict[str, Any]], benchmark: tuple[str, ...] | list[str]
) -> dict[str, float]:
    """The metric keys of a shift set's rows (one per variant × corruption × severity): each
    pair's, then per variant and severity the mean and median over the ``benchmark``
    corruptions (extra ones requested are logged per pair only, so the aggregates stay
    comparable with published ones), and per variant the mean over every benchmark pair."""
    metrics: dict[str, float] = {}
    meta = ("variant", "corruption", "severity")
    for row in rows:
        where = f"{row['variant']}/{name}/{row['corruption']}/{row['severity']}"
        metrics.update({f"{where}/{k}": v for k, v in row.items() if k not in meta})
    for variant in dict.fromkeys(row["variant"] for row in rows):
        mine = [row for row in rows if row["variant"] == variant and row["corruption"] in benchmark]
        keys = [k for k in mine[0] if k not in meta]
        groups = {
            **{str(s): [row for row in mine if row["severity"] == s] for s in SEVERITIES},
            "all": mine,
        }
        for group, members in groups.items():
            for key in keys:
                values = np.array([row[key] for row in members], dtype=np.float64)
                metrics[f"{variant}/{name}/mean/{group}/{key}"] = float(values.mean())
                if group != "all":
                    metrics[f"{variant}/{name}/median/{group}/{key}"] = float(np.median(values))
    return metrics


def sa_fcl_table(dataset: str, name: str, metrics: dict[str, float]) -> dict[str, float]:
    """The SA-FCL repository's robustness table (``ood_eval.py``'s keys): MSP AUROC ×100 with no
    temperature, for an OoD set ``auroc_<dataset>_to_<set>``, for a shift set each corruption at
    severity 5 ``auroc_<dataset>_to_<set>_s5_<corruption>`` and their mean ``…_s5_mean``."""
    stem = f"auroc_{dataset}_to_{name}"
    if f"ood/{name}/msp/auroc" in metrics:
        return {stem: 100 * metrics[f"ood/{name}/msp/auroc"]}
    table, benchmark = {}, []
    for key, value in metrics.items():
        parts = key.split("/")  # shift/<set>/<corruption>/<severity>/<metric>
        if (
            len(parts) == 5
            and parts[0] == "shift"
            and parts[2] not in ("mean", "median")
            and parts[3:] == [str(SEVERITY_OF_TABLE), AUROC_MSP]
        ):
            table[f"{stem}_s{SEVERITY_OF_TABLE}_{parts[2]}"] = 100 * value
            if parts[2] in SHIFTED.info(name)["corruptions"]:  # the mean as shift_metrics'
                benchmark.append(100 * value)
    table[f"{stem}_s{SEVERITY_OF_TABLE}_mean"] = float(np.mean(benchmark))
    return table


# ----------------------------------------------------------------------------- figures


# Drawn later on the tracking thread, where a failure would fail every later write of the run:
# a figure that cannot be drawn becomes a figure saying why, never a failed run.


def _score_histograms(
    name: str,
    id_scores: dict[str, np.ndarray],
    ood_scores: dict[str, np.ndarray],
    aurocs: dict[str, float],
) -> Any:
    from calibexp.plots.robustness import plot_score_histograms

    return _or_why(lambda: plot_score_histograms(name, id_scores, ood_scores, aurocs))


def _severity_curves(
    name: str, rows: list[dict[str, Any]], bins: int, benchmark: tuple[str, ...]
) -> Any:
    from calibexp.plots.robustness import plot_severity_curves

    return _or_why(lambda: plot_severity_curves(name, rows, bins, benchmark))


def _or_why(draw: Any) -> Any:
    try:
        return draw()
    except Exception as err:  # noqa: BLE001 - see above
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6, 1))
        fig.text(0.01, 0.5, f"not drawn: {type(err).__name__}: {err}"[:200], fontsize=8)
        return fig
