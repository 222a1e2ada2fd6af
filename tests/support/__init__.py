"""What the tests share besides fixtures: the repository root, the fast demo overrides, and
helpers to run the real CLI against a test's store. The fakes (``fake_datasets``), the
reference oracles (``torrvision_reference``), the PostgreSQL cluster (``postgres``), the
``mlflow server`` (``mlflow_server``) and the claim-race process (``claimant``) are modules
beside this one."""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
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


def train_until(uri: str, args: list[str], prefix: str) -> tuple[subprocess.Popen, str]:
    """Start ``entrypoints/train.py`` with ``args`` against ``uri`` and read its output up to
    the first line that starts with ``prefix`` (``"epoch 3/6"``); returns the still-running
    process and the output so far."""
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "entrypoints/train.py"), *args],
        env=subprocess_env(uri),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith(prefix):
            break
    return proc, "".join(lines)


def run_id_from(output: str) -> str:
    match = re.search(r"calibexp: MLflow run ([0-9a-f]{32})", output)
    assert match, output[-3000:]
    return match.group(1)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", data[16:24])  # IHDR width, height
