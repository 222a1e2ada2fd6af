"""Shared fixtures: every test gets its own SQLite tracking store in a temporary directory.

Creating an MLflow SQLite schema takes ~2 s (alembic migrations), so one initialised store is
made per session and copied for each test (a file copy: milliseconds). Plain helpers and
constants live in ``tests.support``; nothing imports this file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import MLFLOW_ENV

os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"


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
