"""One sweep worker: walk the whole grid in this worker's own order and train what the run
registry gives it, until every config is FINISHED or held by a live worker (``wait``: until
every config is FINISHED, taking over any whose worker dies).

Any number of workers, on any machines, run the same spec against one store; each config is
trained exactly once (``calibexp.tracking.registry``). Every worker builds each dataset once
per process. At the end it prints, and logs to the sweep's one summary run, the table
config -> run id, status, attempts, host, as the store has it then.
"""

from __future__ import annotations

import csv
import io
import os
import random
import time
from dataclasses import dataclass
from typing import Any

from mlflow.tracking import MlflowClient

from calibexp.config import run_key
from calibexp.errors import CalibexpError, LeaseLost
from calibexp.sweeps.spec import Cell, SweepSpec
from calibexp.tracking.launcher import mark_launcher
from calibexp.tracking.ops_tags import HOST_TAG
from calibexp.tracking.registry import Registry, worker_host
from calibexp.tracking.run import (
    TrackedRun,
    end_run,
    experiment_id_for,
    host_tags,
    tracking_client,
)

SUMMARY_TAG = "calibexp.sweep_summary"
SETTLED = ("finished", "gave_up")


@dataclass
class Row:
    config: str
    run_id: str
    status: str  # FINISHED | RUNNING (held) | KILLED / FAILED (dead) | GAVE_UP | - (none)
    attempts: int
    host: str


def run_sweep(spec: SweepSpec, wait: bool = False) -> list[Row]:
    client = tracking_client()
    experiment = experiment_id_for(client, spec.cells[0].cfg.tracking.experiment)
    summary = open_summary(client, experiment, spec)  # in the first cell's experiment
    order = list(spec.cells)
    random.Random(f"{worker_host()}:{os.getpid()}").shuffle(order)  # its own walk of the grid
    cache: dict[str, Any] = {}  # each dataset built once in this process
    settled: set[str] = set()
    poll_s = min(10.0, min(c.cfg.tracking.heartbeat_s for c in order))
    while True:
        progressed = False
        for cell in order:
            if cell.label in settled:
                continue
            state = train_cell(cell, cache)
            progressed |= state in ("trained", "failed", "taken_over")
            if state in ("trained", "finished", "gave_up"):
                settled.add(cell.label)
        if len(settled) == len(order):
            break
        if not progressed:
            if not wait:  # everything left is held by live workers
                break
            time.sleep(poll_s)  # until their holders finish, or die and can be taken over
    rows = table(client, spec)
    print(format_table(rows), flush=True)
    log_summary(client, summary, rows)
    return rows


def train_cell(cell: Cell, cache: dict[str, Any]) -> str:
    """One config through the registry; what happened (``Outcome.state``, or ``failed`` /
    ``taken_over``). A failure is the run's (it ends FAILED, with its reason) and the worker
    goes on; the registry retries it up to ``tracking.max_attempts`` times."""
    from calibexp.run import run_experiment

    print(f"calibexp: sweep cell {cell.label}", flush=True)
    try:
        return run_experiment(cell.cfg, data_cache=cache).state
    except LeaseLost as err:
        print(f"calibexp: {err}", flush=True)
        return "taken_over"
    except CalibexpError:
        raise  # the store or the input, not this config: nothing else will work either
    except Exception as err:  # noqa: BLE001 - the run is FAILED with the reason; go on
        print(f"calibexp: {cell.label} failed: {type(err).__name__}: {err}", flush=True)
        return "failed"


def table(client: MlflowClient, spec: SweepSpec) -> list[Row]:
    """Every cell as the store has it now, each in its own experiment."""
    rows = []
    for cell in spec.cells:
        experiment = experiment_id_for(client, cell.cfg.tracking.experiment)
        registry = Registry(client, experiment, cell.cfg.tracking)
        state = registry.state(run_key(cell.cfg))
        run = state.run
        if state.kind == "finished":
            status = "FINISHED"
        elif state.kind == "held":
            status = "RUNNING"
        elif state.kind == "exhausted":
            status = "GAVE_UP"
        else:
            status = run.info.status if run is not None else "-"
        host = state.host or (run.data.tags.get(HOST_TAG, "") if run is not None else "")
        rows.append(
            Row(cell.label, run.info.run_id if run else "-", status, state.attempt, host or "-")
        )
    return rows


def format_table(rows: list[Row]) -> str:
    header = Row("config", "run id", "status", 0, "host")
    cells = [[r.config, r.run_id, r.status, str(r.attempts), r.host] for r in rows]
    head = [header.config, header.run_id, header.status, "attempts", header.host]
    widths = [max(len(x) for x in column) for column in zip(head, *cells)]
    lines = ["  ".join(x.ljust(w) for x, w in zip(line, widths)) for line in (head, *cells)]
    done = sum(r.status == "FINISHED" for r in rows)
    return "\n".join([*lines, f"{done}/{len(rows)} FINISHED"])


def open_summary(client: MlflowClient, experiment: str, spec: SweepSpec) -> str:
    """The sweep's one summary run, created by whichever worker claims it first (the claim is
    the registry's, keyed by the sweep's name and spec digest). It is a run of its own, ended
    by the worker that sees every config settled; each worker's launcher run points at it
    (a launcher run would be ended by ``mlflow run`` when its worker exits)."""
    key = f"sweep-{spec.name}-{spec.digest}"
    registry = Registry(client, experiment, spec.cells[0].cfg.tracking)
    tags = {SUMMARY_TAG: spec.name, "calibexp.spec_digest": spec.digest, **host_tags()}
    if registry.claim(key, 1):
        run = TrackedRun.create(client, experiment, f"sweep-{spec.name}", tags)
        run.release()
        mark_launcher(client, run.run_id, f"a worker of sweep {spec.name}, run {run.run_id}")
        client.set_tag(
            run.run_id, "mlflow.note.content", f"Sweep {spec.name}: {len(spec.cells)} configs."
        )
        return run.run_id
    deadline = time.monotonic() + 60  # the claimant creates it right after its claim
    while time.monotonic() < deadline:
        found = client.search_runs(
            [experiment],
            filter_string=(
                f"tags.`{SUMMARY_TAG}` = '{spec.name}' and "
                f"tags.`calibexp.spec_digest` = '{spec.digest}'"
            ),
        )
        if found:
            summary = found[0].info.run_id
            mark_launcher(client, summary, f"a worker of sweep {spec.name}, run {summary}")
            return summary
        time.sleep(0.5)
    raise CalibexpError(
        f"sweep {spec.name}: its summary run was claimed but never created; the claimant died "
        "at start. Rename the sweep or change its spec to start afresh"
    )


def log_summary(client: MlflowClient, summary: str, rows: list[Row]) -> None:
    """The table as this worker last saw it (``sweep/workers/<host>-<pid>.csv``); the worker
    that sees every config settled writes ``sweep/table.csv`` and ``sweep/table.txt`` and ends
    the summary run. Counts are metrics whose step is the number FINISHED, so the UI's latest
    value is the most complete one."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["config", "run_id", "status", "attempts", "host"])
    writer.writerows([[r.config, r.run_id, r.status, r.attempts, r.host] for r in rows])
    client.log_text(summary, out.getvalue(), f"sweep/workers/{worker_host()}-{os.getpid()}.csv")
    done = sum(r.status == "FINISHED" for r in rows)
    for status in ("FINISHED", "RUNNING", "GAVE_UP"):
        count = sum(r.status == status for r in rows)
        client.log_metric(summary, f"sweep/{status.lower()}", count, step=done)
    if all(r.status in ("FINISHED", "GAVE_UP") for r in rows):
        client.log_text(summary, out.getvalue(), "sweep/table.csv")
        client.log_text(summary, format_table(rows) + "\n", "sweep/table.txt")
        end_run(client, summary, "FINISHED")
