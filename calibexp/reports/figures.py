"""A report's figures, drawn from what the runs logged (never recomputed):

- ``reliability_evolution.png``: rows are methods (the report's groups), columns chosen epochs,
  each panel the val reliability diagram that run logged at that epoch
  (``tables/reliability_val/epoch_NNNN.json``): the SA-FCL README's side-by-side evolution of
  CE, focal, Brier and SA-FCL, for any methods. One seed per method, the lowest seed every
  method has (diagrams of different seeds are different models; pooling their bins would draw
  a model nobody trained). Epochs: the report's ``figures.epochs``, else up to 5 spread over the
  epochs every shown run logged a diagram for.
- ``val_curves.png``: ``figures.metrics`` (default val ECE and NLL) per epoch, mean ± std band
  over each method's seeds;
- ``evidence.png``: every ``evidence/<key>`` the methods logged, the same way.
"""

from __future__ import annotations

import json
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from matplotlib.figure import Figure
from mlflow.tracking import MlflowClient

from calibexp.diagrams import VAL_TABLES, evolution_epochs
from calibexp.plots import ReliabilityData, plot_reliability_grid
from calibexp.plots.comparison import Curves, plot_bands
from calibexp.reports.columns import METRIC_PREFIX
from calibexp.reports.table import Table

EVOLUTION = "reliability_evolution.png"
CURVES = "val_curves.png"
EVIDENCE = "evidence.png"
FETCH_THREADS = 8  # metric histories are one store call each: fetched concurrently


def figures(client: MlflowClient, table: Table) -> tuple[dict[str, Figure], list[str]]:
    """Figure file name -> figure, and a line for each figure that could not be drawn."""
    drawn, notes = {}, []
    groups = [g for g in table.groups if g.runs]
    evolution = evolution_figure(client, table)
    if isinstance(evolution, str):
        notes.append(evolution)
    else:
        drawn[EVOLUTION] = evolution
    logged = {
        c.removeprefix(METRIC_PREFIX)
        for g in groups
        for row in g.runs.values()
        for c, v in row.items()
        if c.startswith(METRIC_PREFIX) and _logged(v)
    }
    curves = [k for k in table.spec.figure_metrics if k in logged]
    evidence = sorted(k for k in logged if k.startswith("evidence/"))
    missing = [k for k in table.spec.figure_metrics if k not in logged]
    if missing:
        notes.append(f"{CURVES}: no counted run logged {', '.join(missing)}")
    histories = fetch_histories(client, table, curves + evidence)
    title = ", ".join(table.spec.compare_within) or table.spec.name
    if curves:
        drawn[CURVES] = plot_bands(histories, curves, f"{table.spec.name} ({title})")
    if evidence:
        drawn[EVIDENCE] = plot_bands(
            histories, evidence, f"evidence per epoch (train), {table.spec.name}", "evidence/"
        )
    return drawn, notes


def fetch_histories(client: MlflowClient, table: Table, keys: list[str]) -> Curves:
    jobs = [
        (group.label(), key, row["run_id"])
        for group in table.groups
        for seed, row in sorted(group.runs.items())
        for key in keys
        if _logged(row.get(METRIC_PREFIX + key))
    ]

    def history(job: tuple[str, str, str]) -> list[tuple[int, float]]:
        return sorted((m.step, m.value) for m in client.get_metric_history(job[2], job[1]))

    with ThreadPoolExecutor(FETCH_THREADS) as pool:
        results = list(pool.map(history, jobs))
    curves: Curves = {}
    for (method, key, _), points in zip(jobs, results):
        curves.setdefault(method, {}).setdefault(key, []).append(points)
    return curves


def _logged(value: object) -> bool:
    return value is not None and value == value  # NaN: not logged by this run


def evolution_figure(client: MlflowClient, table: Table) -> Figure | str:
    """The methods × epochs grid, or why it is not drawn."""
    groups = [g for g in table.groups if g.runs]
    common = set.intersection(*(set(g.runs) for g in groups))
    if not common:
        return f"{EVOLUTION}: no seed is shared by every method"
    seed = min(common)
    runs = {g.label(): g.runs[seed]["run_id"] for g in groups}
    logged = {}
    for method, run_id in runs.items():
        files = client.list_artifacts(run_id, VAL_TABLES)
        logged[method] = {int(Path(f.path).stem.split("_")[1]) for f in files}
    shared = sorted(set.intersection(*logged.values()))
    if not shared:
        return f"{EVOLUTION}: the runs of seed {seed} share no logged val diagram epoch"
    wanted = list(table.spec.figure_epochs)
    epochs = [e for e in wanted if e in shared] if wanted else evolution_epochs([], shared)
    if not epochs:
        return f"{EVOLUTION}: none of epochs {wanted} was logged by every method (logged: {shared})"
    jobs = [(m, e) for m in runs for e in epochs]

    def table_of(job: tuple[str, int]) -> ReliabilityData:
        with tempfile.TemporaryDirectory() as tmp:
            path = client.download_artifacts(
                runs[job[0]], f"{VAL_TABLES}/epoch_{job[1]:04d}.json", tmp
            )
            return ReliabilityData.from_dict(json.loads(Path(path).read_text()))

    with ThreadPoolExecutor(FETCH_THREADS) as pool:
        data = list(pool.map(table_of, jobs))
    panels = [(d, f"{m}, seed {seed}: epoch {e}") for (m, e), d in zip(jobs, data)]
    return plot_reliability_grid(
        panels, f"val reliability over training ({table.spec.name})", max_columns=len(epochs)
    )
