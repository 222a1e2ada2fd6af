"""The run ``mlflow run`` made for this command: the one place that reads ``MLFLOW_RUN_ID``.

``mlflow run`` creates a run before our script starts and marks it FINISHED or FAILED when the
script exits. A registry run is never trained inside it: a worker paused past its lease would,
on waking and exiting, have ``mlflow run`` overwrite the status of a run another worker has
taken over. So the launcher run is used as itself only by commands that cannot be taken over
(an evaluation, a study's parent, a sweep's summary), and is otherwise marked as a launcher
pointing at the run that holds the result (``calibexp.launcher_of``), so it never passes for a
result in the UI or in any table.
"""

from __future__ import annotations

import os

from mlflow.tracking import MlflowClient

_launcher: dict[str, str | None] = {}


def launcher_run_id() -> str | None:
    """The id ``mlflow run`` passed, or None; read once (MLflow's ``start_run`` would otherwise
    pop it and a second run in this process would attach to it)."""
    if "id" not in _launcher:
        _launcher["id"] = os.environ.pop("MLFLOW_RUN_ID", None) or None
    return _launcher["id"]


def mark_launcher(client: MlflowClient, target_run_id: str | None, why: str) -> None:
    """Tag the launcher run (if any) as holding nothing but a pointer to ``target_run_id``."""
    launcher = launcher_run_id()
    if not launcher or launcher == target_run_id:
        return
    client.set_tag(launcher, "calibexp.launcher_of", target_run_id or "none")
    client.set_tag(launcher, "mlflow.note.content", f"Launcher only: {why}")
