"""A report's figures, drawn from what the runs logged (never recomputed). Rows and lines are
the report's methods: each group's values of the ``group_by`` keys outside ``compare_within``
(``focal/torrvision``); each block of rows (``compare_within``: one dataset and model) is drawn
apart from the others.

- ``reliability_evolution.png`` (one per block where there are several,
  ``reliability_evolution_<block>.png``): rows are methods, columns chosen epochs, each panel
  the val reliability diagram the run logged at that epoch
  (``tables/reliability_val/epoch_NNNN.json``): the SA-FCL README's side-by-side evolution of
  CE, focal, Brier and SA-FCL, for any methods. One seed per block, the lowest seed every
  method of the block has (diagrams of different seeds are different models; pooling their
  bins would draw a model nobody trained). Epochs: the report's ``figures.epochs``, else up to
  5 spread over the epochs every shown run logged a diagram for.
- ``val_curves.png``: ``figures.metrics`` (default val ECE and NLL) per epoch, mean ± std band
  over each method's seeds, a row of panels per block;
- ``evidence.png``: every ``evidence/<key>`` the methods logged, the same way (the source
  project's ``calibrate_stats.py`` view, for several methods and seeds at once).

``figure_jobs`` fetches the data and yields what to draw; ``Drawing`` renders the PNGs, in
worker processes where the platform forks, while the next figure's data is fetched (drawing is
CPU-bound matplotlib, and a 100-run report's 25-panel grids are most of its time:
benchmarks/report.py).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient

from calibexp.diagrams import VAL_TABLES, evolution_epochs
from calibexp.plots import ReliabilityData, figure_png
from calibexp.plots.comparison import Curves, plot_bands, plot_reliability_matrix
from calibexp.reports.columns import METRIC_PREFIX
from calibexp.reports.spec import param_key
from calibexp.reports.table import Group, Table, group_blocks

EVOLUTION = "reliability_evolution.png"
CURVES = "val_curves.png"
EVIDENCE = "evidence.png"
FETCH_THREADS = 8  # metric histories and artifacts are one store call each: fetched concurrently
DRAW_PROCESSES = 4  # at most; never more than the machine's cores

Job = tuple[Callable[..., Any], tuple[Any, ...]]  # a plot function and its arguments


def figure_jobs(client: MlflowClient, table: Table) -> Iterator[tuple[str, Job | str]]:
    """Figure file name -> what draws it, or why it cannot be drawn: each evolution grid as soon
    as its diagrams are fetched (so it draws while the metric histories are fetched), then the
    band plots."""
    blocks = blocks_of(table)
    for block, groups in blocks.items():
        name = evolution_name(block, len(blocks))
        rows = evolution_rows(client, table, groups)
        title = f"val reliability over training, {_block_title(block)}{table.spec.name}"
        yield name, rows if isinstance(rows, str) else (plot_reliability_matrix, (rows, title))
    logged = {
        c.removeprefix(METRIC_PREFIX)
        for groups in blocks.values()
        for g in groups
        for row in g.runs.values()
        for c, v in row.items()
        if c.startswith(METRIC_PREFIX) and _logged(v)
    }
    curves = [k for k in table.spec.figure_metrics if k in logged]
    evidence = sorted(k for k in logged if k.startswith("evidence/"))
    missing = [k for k in table.spec.figure_metrics if k not in logged]
    histories = fetch_histories(client, table, blocks, curves + evidence)
    if missing:
        without = "; drawn without" if curves else ""
        yield CURVES, f"no counted run logged {', '.join(missing)}{without}"
    if curves:
        yield CURVES, (plot_bands, (histories, curves, f"val per epoch, {table.spec.name}"))
    if evidence:
        title = f"evidence per epoch (train), {table.spec.name}"
        yield EVIDENCE, (plot_bands, (histories, evidence, title, "evidence/"))


class Drawing:
    """Figures rendered to PNG bytes (at each figure's own dpi) as they are submitted: in
    worker processes where the platform forks (Linux), else here; the same bytes either way."""

    def __init__(self) -> None:
        self.pool: ProcessPoolExecutor | None = None
        self.pending: dict[str, Any] = {}
        processes = min(os.cpu_count() or 1, DRAW_PROCESSES)
        # Forked now, before the figures' data is fetched: fork copies only the calling thread,
        # so it is safe while no other thread exists that could hold a lock the child would
        # wait on forever (MLflow's artifact downloads leave idle worker threads behind).
        # ProcessPoolExecutor forks all its workers at the first submit: a no-op one, here.
        if processes > 1 and sys.platform.startswith("linux") and threading.active_count() == 1:
            context = multiprocessing.get_context("fork")
            self.pool = ProcessPoolExecutor(processes, mp_context=context)
            self.pool.submit(os.getpid).result()

    def submit(self, name: str, job: Job) -> None:
        self.pending[name] = self.pool.submit(_png, *job) if self.pool else _png(*job)

    def pngs(self) -> dict[str, bytes]:
        """Every submitted figure's PNG, once all are drawn."""
        return {n: p if isinstance(p, bytes) else p.result() for n, p in self.pending.items()}

    def __enter__(self) -> "Drawing":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool:
            self.pool.shutdown(cancel_futures=True)


def _png(plot: Callable[..., Any], arguments: tuple[Any, ...]) -> bytes:
    return figure_png(plot(*arguments), "figure")


def blocks_of(table: Table) -> dict[tuple[str, ...], list[Group]]:
    """The groups with runs, by their ``compare_within`` values (one block: the whole table)."""
    return group_blocks([g for g in table.groups if g.runs], table.spec)


def method_of(group: Group, table: Table) -> str:
    """The group's values of the keys outside ``compare_within`` (its label within a block)."""
    inside = {param_key(k) for k in table.spec.compare_within}
    parts = [v for v, p in zip(group.key, table.spec.group_params) if p not in inside]
    return "/".join(parts) or group.label()


def _block_title(block: tuple[str, ...]) -> str:
    return f"{'/'.join(block)}, " if block else ""


def evolution_name(block: tuple[str, ...], blocks: int) -> str:
    """``reliability_evolution.png``, or one per block (``…_cifar10_resnet50.png``)."""
    if blocks == 1:
        return EVOLUTION
    return (
        f"{EVOLUTION.removesuffix('.png')}_{re.sub(r'[^A-Za-z0-9.-]+', '_', '_'.join(block))}.png"
    )


def fetch_histories(
    client: MlflowClient, table: Table, blocks: dict[tuple[str, ...], list[Group]], keys: list[str]
) -> Curves:
    jobs = [
        ("/".join(block), method_of(group, table), key, row["run_id"])
        for block, groups in blocks.items()
        for group in groups
        for _, row in sorted(group.runs.items())
        for key in keys
        if _logged(row.get(METRIC_PREFIX + key))
    ]

    def history(job: tuple[str, str, str, str]) -> list[tuple[int, float]]:
        # One value per epoch: a resumed run may log an epoch twice; the later one stands.
        points = sorted(client.get_metric_history(job[3], job[2]), key=lambda m: m.timestamp)
        return sorted({m.step: m.value for m in points}.items())

    with ThreadPoolExecutor(FETCH_THREADS) as pool:
        results = list(pool.map(history, jobs))
    curves: Curves = {}
    for (block, method, key, _), points in zip(jobs, results):
        curves.setdefault(block, {}).setdefault(method, {}).setdefault(key, []).append(points)
    return curves


def _logged(value: object) -> bool:
    return value is not None and value == value  # NaN: not logged by this run


def _tables(client: MlflowClient, run_id: str, place: Path) -> dict[int, Path]:
    """The run's logged val diagram tables by epoch, downloaded under ``place`` (none: {})."""
    place.mkdir(parents=True)
    if not client.list_artifacts(run_id, VAL_TABLES):
        return {}
    folder = Path(client.download_artifacts(run_id, VAL_TABLES, str(place)))
    return {int(p.stem.split("_")[1]): p for p in folder.glob("epoch_*.json")}


def evolution_rows(
    client: MlflowClient, table: Table, groups: list[Group]
) -> list[tuple[str, list[tuple[ReliabilityData, str]]]] | str:
    """One block's rows for ``plot_reliability_matrix``, or why there are none."""
    common = set.intersection(*(set(g.runs) for g in groups))
    if not common:
        return "no seed is shared by every method"
    seed = min(common)
    runs = {f"{method_of(g, table)}, seed {seed}": g.runs[seed]["run_id"] for g in groups}
    # Each run's whole table folder in one download (one store call per run, not per file).
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(FETCH_THREADS) as pool:
        places = [Path(tmp) / str(i) for i in range(len(runs))]
        logged = dict(zip(runs, pool.map(partial(_tables, client), runs.values(), places)))
        shared = sorted(set.intersection(*(set(files) for files in logged.values())))
        if not shared:
            return f"the runs of seed {seed} share no logged val diagram epoch"
        wanted = list(table.spec.figure_epochs)
        epochs = [e for e in wanted if e in shared] if wanted else evolution_epochs([], shared)
        if not epochs:
            return f"none of epochs {wanted} was logged by every method (logged: {shared})"
        return [
            (m, [(ReliabilityData.from_dict(json.loads(logged[m][e].read_text())),
                  f"epoch {e}") for e in epochs])
            for m in runs
        ]  # fmt: skip
