"""Checkpoints as run artifacts: ``checkpoints/last.pt`` and ``checkpoints/best.pt``.

A checkpoint is a plain dict of tensors and primitives (model, optimizer and scheduler state
dicts, epoch, RNG state, that epoch's metrics, the best-so-far record and the resolved config),
so it loads with ``torch.load(weights_only=True)``: no pickled code runs on load.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from mlflow.tracking import MlflowClient

from calibexp.errors import CalibexpError

LAST = "checkpoints/last.pt"
BEST = "checkpoints/best.pt"


def save_atomic(state: dict[str, Any], path: Path) -> None:
    """Write to a sibling file, then rename: a crash mid-write leaves the old file intact."""
    partial = path.with_name(f".{path.name}.partial")
    torch.save(state, partial)
    os.replace(partial, path)


def load_checkpoint(client: MlflowClient, run_id: str, artifact: str = LAST) -> dict[str, Any]:
    """Download and read a checkpoint artifact of ``run_id``."""
    folder = Path(artifact).parent.as_posix()
    names = {Path(f.path).name for f in client.list_artifacts(run_id, folder)}
    if Path(artifact).name not in names:
        raise CalibexpError(
            f"run '{run_id}' has no {artifact} (it stopped before its first checkpoint was "
            "written); start the experiment again instead"
        )
    with tempfile.TemporaryDirectory(prefix="calibexp-ckpt-") as tmp:
        local = client.download_artifacts(run_id, artifact, tmp)
        try:
            return torch.load(local, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - a damaged file, whatever the exact error
            raise CalibexpError(f"run '{run_id}': {artifact} cannot be read ({err})") from None
