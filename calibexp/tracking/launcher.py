"""The run ``mlflow run`` made for this command: the one place that reads ``MLFLOW_RUN_ID``.

``mlflow run`` creates a run before our script starts, and when the script exits it marks that
run FINISHED (exit 0) or FAILED, unless the run was already ended. A command uses it in one of
two ways:

- ``take_launcher()``: the launcher run becomes the command's own run (a new registry run, an
  evaluation, a study's parent, a sweep's summary);
- ``mark_launcher()``: the command trained nothing in it (the config was done, held elsewhere,
  or an existing run was resumed): it is tagged ``calibexp.launcher_of`` with the run that holds
  the result, so it never passes for a result in the UI or in any table.

A worker whose registry run was taken over exits with code 3, never 0, so ``mlflow run`` can at
worst mark that run FAILED, never FINISHED; its new holder sets it back to RUNNING at its next
heartbeat (``calibexp.tracking.registry.Lease``).
"""

from __future__ import annotations

import os

from mlflow.tracking import MlflowClient

_launcher: dict[str, str | None | bool] = {"used": False}


def launcher_run_id() -> str | None:
    """The id ``mlflow run`` passed, or None; read once (MLflow's ``start_run`` would otherwise
    pop it, and a second run in this process would attach to it)."""
    if "id" not in _launcher:
        _launcher["id"] = os.environ.pop("MLFLOW_RUN_ID", None) or None
    return _launcher["id"]  # type: ignore[return-value]


def take_launcher() -> str | None:
    """The launcher run's id, to be used as this command's run (once; None after that)."""
    launched = None if _launcher["used"] else launcher_run_id()
    _launcher["used"] = True
    return launched


def mark_launcher(client: MlflowClient, target_run_id: str | None, why: str) -> None:
    """Tag the launcher run (if not used yet) as holding nothing but a pointer."""
    launched = take_launcher()
    if not launched or launched == target_run_id:
        return
    client.set_tag(launched, "calibexp.launcher_of", target_run_id or "none")
    client.set_tag(launched, "mlflow.note.content", f"Launcher only: {why}")
