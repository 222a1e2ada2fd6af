"""The runs a report is made of, read from the MLflow store with ``mlflow.search_runs``, and
which of them count.

A run counts when it is a training run's result: FINISHED, tagged with a run key, and none of
the runs that only point at results (a launcher run ``mlflow run`` made for a command that
trained nothing, ``calibexp.launcher_of``; a sweep's summary run; a study's parent run; a report
run; a re-evaluation of another run's checkpoint, ``calibexp.source_run_id``, whose numbers
are its source's). A pruned study trial does not count (it stopped early). Of two FINISHED runs
of one group and seed (a forced re-run: ``calibexp.forced``) the earliest unforced one counts
and the other is listed as a duplicate. Runs not FINISHED are listed, never counted.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from calibexp.errors import CalibexpError
from calibexp.reports.spec import Selection

TAG = "tags."
PARAM = "params."
REPORT_TAG = "calibexp.report"
RUN_KEY_TAG = "calibexp.run_key"
# Runs that hold no result of their own: never listed, only counted (tag -> what the run is);
# report runs are not even counted.
POINTERS = {
    "calibexp.launcher_of": "launcher run",
    "calibexp.sweep_summary": "sweep summary run",
    "calibexp.study_storage": "study parent run",
    "calibexp.source_run_id": "re-evaluation run",
}


@dataclass
class Selected:
    runs: pd.DataFrame  # mlflow.search_runs' columns, one row per listed run
    cells: dict[str, dict[str, str]] | None  # a sweep's cells: run key -> flattened config
    left_out: dict[str, int] = field(default_factory=dict)  # kind of pointer run -> count


def select_runs(client: MlflowClient, selection: Selection) -> Selected:
    """Every run of the selection, pointer runs dropped (counted in ``left_out``)."""
    cells = None
    if selection.sweep is not None:
        from calibexp.sweeps.spec import load_sweep

        # Found by run key in every experiment (unless named): a sweep started with `mlflow
        # run --experiment-name X` trains into X, not into its configs' tracking.experiment.
        cells = load_sweep(selection.sweep, root=Path.cwd()).cells
    ids = ids_for(client, list(selection.experiments))
    filters = []
    if selection.study:
        filters.append(f"tags.`calibexp.study` = '{selection.study}'")
    if selection.sweep_name:
        listed = sweep_run_ids(client, selection.sweep_name, ids)
        filters.append(f"attributes.run_id IN ({', '.join(repr(r) for r in listed)})")
    if selection.filter:
        filters.append(selection.filter)  # MLflow's grammar joins conditions with "and" only
    try:
        runs = mlflow.search_runs(
            experiment_ids=ids,
            filter_string=" and ".join(filters),
            output_format="pandas",
            max_results=100_000,
            order_by=["attributes.start_time ASC"],
        )
    except mlflow.exceptions.MlflowException as err:
        message = str(err).strip().splitlines()[0][:300]
        raise CalibexpError(f"select {selection.describe()}: MLflow refused: {message}") from None
    runs = runs.reset_index(drop=True)
    left_out: dict[str, int] = {}
    keep = tag_column(runs, REPORT_TAG).isna()  # never listed
    for tag, what in POINTERS.items():
        hit = tag_column(runs, tag).notna()
        if (hit & keep).any():
            left_out[what] = int((hit & keep).sum())
        keep &= ~hit
    untagged = keep & tag_column(runs, RUN_KEY_TAG).isna()
    if untagged.any():
        left_out["run without a run key (not a calibexp training run)"] = int(untagged.sum())
    keep &= ~untagged
    runs = runs[keep].reset_index(drop=True)
    flat_cells = None
    if cells is not None:
        from calibexp.config import flatten, run_key

        flat_cells = {run_key(cell.cfg): flatten(cell.cfg) for cell in cells}
        runs = runs[tag_column(runs, RUN_KEY_TAG).isin(flat_cells)].reset_index(drop=True)
        left_out = {}  # chosen by run key: no pointer run could have been counted
    if runs.empty:
        raise CalibexpError(
            f"select {selection.describe()} matched no runs; {_what_exists(client)}"
        )
    return Selected(runs, flat_cells, left_out)


def tag_column(runs: pd.DataFrame, tag: str) -> pd.Series:
    """The runs' values of ``tag`` (``mlflow.search_runs`` leaves out a tag no run has: all
    missing then)."""
    return runs.get(TAG + tag, pd.Series(None, index=runs.index, dtype=object))


def ids_for(client: MlflowClient, names: list[str]) -> list[str]:
    if not names:
        return [e.experiment_id for e in client.search_experiments()]
    ids = []
    for name in names:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise CalibexpError(f"experiment {name!r} is not in the store; {_what_exists(client)}")
        ids.append(experiment.experiment_id)
    return ids


def sweep_run_ids(client: MlflowClient, name: str, experiments: list[str]) -> list[str]:
    """The run ids the latest summary run of sweep ``name`` lists (``calibexp.sweeps.worker``:
    ``sweep/table.csv`` once every config settled, else the newest worker's view)."""
    from calibexp.sweeps.worker import SUMMARY_TAG

    found = client.search_runs(
        experiments, f"tags.`{SUMMARY_TAG}` = '{name}'", order_by=["attributes.start_time DESC"]
    )
    if not found:
        every = client.search_runs(experiments, f"tags.`{SUMMARY_TAG}` != ''", max_results=1000)
        names = sorted({r.data.tags[SUMMARY_TAG] for r in every})
        raise CalibexpError(
            f"no sweep named {name!r} in the store (and no spec file at that path); sweeps: "
            f"{', '.join(names) or 'none'}"
        )
    summary = found[0].info.run_id
    with tempfile.TemporaryDirectory() as tmp:
        views = [f.path for f in client.list_artifacts(summary, "sweep/workers")]
        table = "sweep/table.csv" if client.list_artifacts(summary, "sweep/table.csv") else None
        if table is None and not views:
            raise CalibexpError(f"sweep {name!r}: its summary run {summary} lists no runs yet")
        chosen = table or max(views, key=lambda p: _finished_rows(client, summary, p))
        frame = pd.read_csv(client.download_artifacts(summary, chosen, tmp), dtype=str)
    listed = sorted(r for r in frame["run_id"] if isinstance(r, str) and r != "-")
    if not listed:
        raise CalibexpError(f"sweep {name!r}: its summary run {summary} lists no trained run yet")
    return listed


def _finished_rows(client: MlflowClient, run_id: str, path: str) -> int:
    """How many configs a worker's view lists as FINISHED: artifact listings carry no time, and
    a sweep's FINISHED configs only grow, so the most complete view is the latest."""
    with tempfile.TemporaryDirectory() as tmp:
        frame = pd.read_csv(client.download_artifacts(run_id, path, tmp), dtype=str)
    return int((frame["status"] == "FINISHED").sum())


def _what_exists(client: MlflowClient) -> str:
    rows = []
    for experiment in sorted(client.search_experiments(), key=lambda e: e.name):
        runs = client.search_runs(
            [experiment.experiment_id], "tags.`calibexp.run_key` != ''", max_results=1000
        )
        rows.append(f"{experiment.name} ({len(runs)} calibexp runs)")
    return "experiments in the store: " + (", ".join(rows) if rows else "none")
