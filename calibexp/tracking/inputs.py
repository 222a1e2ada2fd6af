"""A run's data as an MLflow dataset input, so the run table's Dataset column and its dataset
filter work: the name is the registered dataset, the digest the split digest (the exact
train/val/test indices), the source the data root (MLflow's ``local`` source), or for embedded
data the code that loads it (its ``code`` source)."""

from __future__ import annotations

import json
from typing import Any

from mlflow.entities import Dataset, DatasetInput, InputTag

CONTEXT = "train/val/test"  # one split digest covers all three


def dataset_input(cfg: Any, split_digest: str) -> DatasetInput:
    root = getattr(cfg.data, "root", None)
    if root:
        source_type, source = "local", {"uri": str(root)}
    else:  # embedded (digits)
        source_type, source = (
            "code",
            {"tags": {"mlflow.source.name": f"calibexp.data.{cfg.data.name}"}},
        )
    dataset = Dataset(cfg.data.name, split_digest, source_type, json.dumps(source))
    return DatasetInput(dataset, tags=[InputTag("mlflow.data.context", CONTEXT)])
