"""One claimant process for the claim races (tests/tracking/test_registry_workers.py,
benchmarks/registry.py): open the store, prove it may write, say "ready", wait for the go file,
then try to claim every key (attempt 1) in order; prints the keys it won as JSON.

    python -m tests.support.claimant <experiment id> '<json list of keys>' <go file>
    python -m tests.support.claimant <experiment id> '<json list of keys>' <go file> --fork N

With ``--fork N`` the process imports once and forks N claimants (``fork_contenders``), named
``claimant-0`` .. ``claimant-N-1``: N real processes, each with its own store connection, PID
and host, racing from the same go file. It says "ready" once all N have, and at the end prints
one JSON list with each claimant's exit status and output.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from calibexp.config import TrackingConfig
from calibexp.tracking.registry import Registry
from calibexp.tracking.store import open_store


def wait_for_go(go: str, poll_s: float) -> None:
    while not os.path.exists(go):
        time.sleep(poll_s)


def fork_contenders(hosts: list[str], contend: Callable[[], None]) -> int:
    """Fork one child per host that runs ``contend()`` with ``CALIBEXP_HOST`` set to it.

    Why fork: importing calibexp (torch, torchvision, mlflow) costs ~7 s of CPU per process, so
    16 contenders that each import cost a minute of a 2-core machine before any race starts.
    Forked after the imports, they share them; everything the race is about happens in the
    children, after the fork: each opens its own store client (MLflow keys its HTTP session by
    PID, and this parent never makes a request), says "ready" and waits for the go file, exactly
    as a process started on its own does.

    This process prints "ready" once every child has (if one does not, all are killed and the
    results printed), then one JSON line: per child its host, pid, exit status (negative: the
    signal), stdout and stderr. Returns 0 if every child said "ready"."""
    sys.stdout.flush()
    sys.stderr.flush()
    folder = Path(tempfile.mkdtemp(prefix="calibexp-contenders-"))
    children = []
    for i, host in enumerate(hosts):
        read_end, write_end = os.pipe()
        err_path = folder / f"{i}.err"
        pid = os.fork()
        if pid == 0:  # the child: stdout to the pipe, stderr to its own file
            code = 1
            try:
                os.close(read_end)
                for child in children:
                    child["out"].close()
                os.dup2(write_end, 1)
                os.dup2(os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
                os.environ["CALIBEXP_HOST"] = host
                contend()
                code = 0
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else 1
            except BaseException:  # noqa: BLE001 - reported as the child's stderr and status
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        os.close(write_end)
        children.append({"host": host, "pid": pid, "out": os.fdopen(read_end), "err": err_path})

    ready = all(child["out"].readline().strip() == "ready" for child in children)
    if ready:
        print("ready", flush=True)
    else:
        for child in children:
            try:
                os.kill(child["pid"], 9)
            except ProcessLookupError:
                pass
    results = []
    for child in children:
        out = child["out"].read()
        child["out"].close()
        _, status = os.waitpid(child["pid"], 0)
        results.append(
            {
                "host": child["host"],
                "pid": child["pid"],
                "returncode": os.waitstatus_to_exitcode(status),
                "stdout": out,
                "stderr": child["err"].read_text(),
            }
        )
        child["err"].unlink()
    folder.rmdir()
    print(json.dumps(results), flush=True)
    return 0 if ready else 1


def forked_hosts(prefix: str) -> list[str] | None:
    """The hosts of ``--fork N`` (``prefix-0`` ..), or None without it."""
    if "--fork" not in sys.argv:
        return None
    return [f"{prefix}-{i}" for i in range(int(sys.argv[sys.argv.index("--fork") + 1]))]


def contend(experiment: str, keys: list[str], go: str) -> None:
    registry = Registry(open_store(), experiment, TrackingConfig())
    registry.ensure_writable()
    print("ready", flush=True)
    wait_for_go(go, 0.001)
    print(json.dumps([k for k in keys if registry.claim(k, 1)]), flush=True)


def main() -> None:
    experiment, keys, go = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
    hosts = forked_hosts("claimant")
    if hosts is None:
        contend(experiment, keys, go)
    else:
        sys.exit(fork_contenders(hosts, lambda: contend(experiment, keys, go)))


if __name__ == "__main__":
    main()
