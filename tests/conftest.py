"""Shared fixtures: every test gets its own SQLite tracking store in a temporary directory.

Creating an MLflow SQLite schema takes ~2 s (alembic migrations), so one initialised store is
made per session and copied for each test (a file copy: milliseconds).
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
MLFLOW_ENV = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_RUN_ID",
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_EXPERIMENT_NAME",
)
# A fast variant of the demo for tests that train: narrow CNN, few epochs, records every epoch.
FAST = [
    "model.width=16",
    "train.epochs=3",
    "train.progress=false",
    "tracking.flush_every_s=0",
    "tracking.checkpoint_every_s=0",
]


@pytest.fixture(scope="session")
def store_template(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("store-template")
    uri = f"sqlite:///{folder}/mlflow.db"
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, mlflow; mlflow.MlflowClient(sys.argv[1]).search_experiments()",
            uri,
        ],
        check=True,
        cwd=folder,
        capture_output=True,
    )
    return folder / "mlflow.db"


@pytest.fixture(autouse=True)
def tracking_store(tmp_path, monkeypatch, store_template) -> str:
    """A private store: ``MLFLOW_TRACKING_URI`` set, cwd = tmp_path (artifacts land there)."""
    for name in MLFLOW_ENV:
        monkeypatch.delenv(name, raising=False)
    shutil.copy(store_template, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    return uri


def subprocess_env(uri: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in MLFLOW_ENV}
    env["MLFLOW_TRACKING_URI"] = uri
    # The venv's python first: `mlflow run --env-manager local` runs `python` from PATH.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def mlflow_run(uri: str, *args: str, entry: str = "train") -> subprocess.CompletedProcess:
    """``mlflow run <repo> -e <entry> --env-manager local <args>`` against ``uri``."""
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "mlflow"),
            "run",
            str(ROOT),
            "-e",
            entry,
            "--env-manager",
            "local",
            *args,
        ],
        env=subprocess_env(uri),
        capture_output=True,
        text=True,
        timeout=600,
    )


def run_id_from(output: str) -> str:
    match = re.search(r"calibexp: MLflow run ([0-9a-f]{32})", output)
    assert match, output[-3000:]
    return match.group(1)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", data[16:24])  # IHDR width, height
