"""A real ``mlflow server`` for the multi-machine tests: PostgreSQL backend store (the throwaway
cluster of ``tests/support/postgres.py``), proxied artifacts (``--artifacts-destination``), on a
free 127.0.0.1 port; started in its own process group so that stopping it (or killing it, to test
a server that goes away mid-run) takes uvicorn, its workers and its job consumers with it
(platform.md §4)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.support.postgres import free_port

MLFLOW = str(Path(sys.executable).parent / "mlflow")


def upgrade_schema(backend: str) -> None:
    """Create the MLflow schema once, before any worker or server fans out (platform.md §3)."""
    subprocess.run([MLFLOW, "db", "upgrade", backend], check=True, capture_output=True)


class Server:
    def __init__(
        self, backend: str, folder: Path, app: str | None = None, env: dict | None = None
    ) -> None:
        self.backend, self.folder, self.app = backend, folder, app
        self.port = free_port()
        # No job execution (huey consumers for MLflow's GenAI jobs, nothing calibexp uses): it
        # would start 8 more python processes with every server start, ~20 s of CPU on 2 cores
        # and ~2 GB, beside the tracking API under test.
        self.env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **(env or {})}
        self.proc: subprocess.Popen | None = None
        (folder / "artifacts").mkdir(parents=True, exist_ok=True)

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120) -> "Server":
        command = [
            MLFLOW,
            "server",
            "--backend-store-uri",
            self.backend,
            "--artifacts-destination",
            str(self.folder / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "2",
        ]
        if self.app:
            command += ["--app-name", self.app]
        log = open(self.folder / "server.log", "ab")
        self.proc = subprocess.Popen(
            command, cwd=self.folder, env=self.env, stdout=log, stderr=log, start_new_session=True
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.3)
        raise RuntimeError(
            f"mlflow server did not start: {(self.folder / 'server.log').read_text()[-3000:]}"
        )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        # the job consumers of a killed server may outlive it briefly; the port must be free
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        self.proc = None
