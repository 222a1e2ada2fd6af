"""Is a RUNNING run alive? Decides whether ``resume`` may take it over.

A run that was killed with SIGKILL (or lost its machine) stays RUNNING in MLflow. On the same
host its process id tells; elsewhere its heartbeat tag (renewed every epoch) must be older than
``tracking.stale_after_s``.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from calibexp.errors import CalibexpError


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def assert_resumable(run: Any, stale_after_s: float) -> None:
    run_id, status, tags = run.info.run_id, run.info.status, run.data.tags
    if status == "FINISHED":
        raise CalibexpError(
            f"run '{run_id}' already FINISHED; nothing to resume (re-evaluate it with "
            f"`mlflow run . -e evaluate -P run_id={run_id}`)"
        )
    if status != "RUNNING":
        return
    host, pid = tags.get("calibexp.host"), tags.get("calibexp.pid")
    if host == socket.gethostname() and pid and pid.isdigit() and int(pid) != os.getpid():
        if _process_alive(int(pid)):
            raise CalibexpError(
                f"run '{run_id}' is still RUNNING here (pid {pid}); stop it first or wait for it"
            )
        return
    heartbeat = float(tags.get("calibexp.heartbeat", "0") or 0)
    age = time.time() - heartbeat
    if host != socket.gethostname() and age < stale_after_s:
        raise CalibexpError(
            f"run '{run_id}' is RUNNING on host {host} (last heartbeat {age:.0f} s ago, under "
            f"tracking.stale_after_s={stale_after_s:.0f}); resume it once it is stale"
        )
