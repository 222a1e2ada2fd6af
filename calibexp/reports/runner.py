"""One report, from the store to files: ``make_report`` reads the runs, builds the table, writes
``table.md``, ``table.tex``, ``table.csv``, ``runs.csv`` and the figures into ``out``, and logs
that folder as the artifacts of one report run (tagged ``calibexp.report``, never selected by
another report), whose description is the Markdown table.

Bad input (no runs, an unknown column or group key) is refused before anything is written or a
run is created.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow.entities import Param

from calibexp.reports.figures import CURVES, EVIDENCE, EVOLUTION, Drawing, figure_jobs
from calibexp.reports.render import latex, markdown, runs_csv, stats_csv
from calibexp.reports.selection import REPORT_TAG, select_runs
from calibexp.reports.spec import ReportSpec
from calibexp.reports.table import Table, build_table
from calibexp.tracking.launcher import launcher_run_id
from calibexp.tracking.names import RUN_NAME_TAG
from calibexp.tracking.run import TrackedRun, end_run, experiment_id_for, tracking_client

FILES = ("table.md", "table.tex", "table.csv", "runs.csv", EVOLUTION, CURVES, EVIDENCE)
REPORT_EXPERIMENT = "calibexp-reports"  # where a report run goes when not started by mlflow run
DESCRIPTION_LIMIT = 5000  # characters of the Markdown table shown as the run's description


@dataclass
class Report:
    table: Table
    out: Path
    written: list[str]
    run_id: str | None


def mark_report_launcher(select: str) -> None:
    """Tag the run ``mlflow run`` made for this command as a report run before anything can
    fail, so a refused report leaves a FAILED run no later report selects (its name is set once
    the report is made)."""
    launched = launcher_run_id()
    if launched:
        tracking_client().set_tag(launched, REPORT_TAG, f"(refused: {select})"[:5000])


def make_report(spec: ReportSpec, out: Path, log: bool = True, draw: bool = True) -> Report:
    client = tracking_client()
    selected = select_runs(client, spec.selection)
    table = build_table(selected, spec)
    with Drawing() as drawing:
        for name, job in figure_jobs(client, table) if draw else []:
            if isinstance(job, str):
                table.notes.append(f"{name}: {job}")  # why it is not drawn
            else:
                drawing.submit(name, job)
        pngs = drawing.pngs()
    files = {
        "table.md": markdown(table).encode(),
        "table.tex": latex(table).encode(),
        "table.csv": stats_csv(table).encode(),
        "runs.csv": runs_csv(table).encode(),
        **pngs,
    }
    out.mkdir(parents=True, exist_ok=True)
    stale = [*FILES, *(p.name for p in out.glob(f"{EVOLUTION.removesuffix('.png')}_*.png"))]
    for name in stale:  # a figure an earlier report of this folder drew, not drawn now
        (out / name).unlink(missing_ok=True)
    for name, content in files.items():
        staged = out / f".{name}.partial"
        staged.write_bytes(content)
        staged.replace(out / name)  # never a half-written file under its name
    # table.spec: group_by as the table has it (extended with the keys that vary)
    run_id = log_report(client, table.spec, out, sorted(files)) if log else None
    return Report(table, out, sorted(files), run_id)


def log_report(client: Any, spec: ReportSpec, out: Path, names: list[str]) -> str:
    tags = {REPORT_TAG: spec.name, RUN_NAME_TAG: spec.name}
    run = TrackedRun.for_this_command(
        client, lambda: experiment_id_for(client, REPORT_EXPERIMENT), spec.name, tags
    )
    run.release()  # this function writes the run itself, and ends it
    try:
        # report.*: `mlflow run` already logged its own parameters (select, …) as given
        settings = {
            "report.selection": spec.selection.describe()[:6000],
            "report.group_by": " ".join(spec.group_by),
            "report.compare_within": " ".join(spec.compare_within),
            "report.columns": " ".join(spec.columns) or "default",
            "report.alpha": str(spec.alpha),
        }
        client.log_batch(run.run_id, params=[Param(k, v) for k, v in settings.items()])
        for name in names:  # only the report's files, whatever else the folder holds
            client.log_artifact(run.run_id, str(out / name), "report")
        table_md = (out / "table.md").read_text()
        description = table_md if len(table_md) <= DESCRIPTION_LIMIT else (
            table_md[:DESCRIPTION_LIMIT] + "\n… (report/table.md holds the whole table)"
        )  # fmt: skip
        client.set_tag(run.run_id, "mlflow.note.content", description)
    except BaseException as err:
        end_run(client, run.run_id, "FAILED", f"{type(err).__name__}: {err}")
        raise
    end_run(client, run.run_id, "FINISHED")
    return run.run_id
