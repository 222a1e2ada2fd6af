"""How long ``report`` takes on a 100-run store, against reading those runs at all.

    .venv/bin/python benchmarks/report.py [--runs-per-group 5] [--repeats 3]

Builds a throwaway SQLite store shaped like a paper grid's slice: CIFAR-10 × 4 backbones × 5
losses × 5 seeds = 100 FINISHED runs, each with 20 epochs of val ECE / NLL / accuracy and two
evidence components, the test suite before and after temperature scaling, an OoD AUROC, and
five logged val reliability tables (the evolution grid's panels). Then times, as separate
processes, median of ``--repeats``:

- baseline: ``python -c "import mlflow; mlflow.search_runs(...)"`` on that store (a Python
  start, MLflow's import, and one read of every run: what any report has to pay);
- ``python -m entrypoints.report --select experiment:bench``: the whole command, imports,
  table, LaTeX, CSV, the three figures and the report run logged.

Prints both, their ratio, and the report's time against the 10 s target on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("resnet50", "resnet110", "wrn26_10", "densenet121")
LOSSES = ("ce", "brier", "mmce", "focal", "flsd53")
EPOCHS = 20
DIAGRAM_EPOCHS = (0, 5, 10, 15, 19)
EXPERIMENT = "bench"


def reliability_table(rng: np.random.Generator, epoch: int) -> dict:
    """A val diagram's logged data (``ReliabilityData.to_dict``), 15 bins, 5,000 samples."""
    counts = rng.multinomial(5000, np.linspace(0.2, 2.0, 15) / np.linspace(0.2, 2.0, 15).sum())
    confidence = (np.arange(15) + 0.5) / 15
    accuracy = np.clip(confidence - 0.05 * (1 - epoch / EPOCHS) + rng.normal(0, 0.02, 15), 0, 1)
    mesh = np.linspace(0, 1, 101)
    return {
        "edges": list(np.linspace(0, 1, 16)),
        "counts": [int(c) for c in counts],
        "accuracy": list(accuracy),
        "confidence": list(confidence),
        "ece": 0.03,
        "smece": 0.028,
        "sigma": 0.05,
        "accuracy_overall": 0.93,
        "n": 5000,
        "smooth": {"mesh": list(mesh), "accuracy": list(mesh * 0.97), "density": [1.0] * 101},
    }


def build_store(folder: Path, seeds: int) -> str:
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{folder}/mlflow.db"
    client = MlflowClient(uri)
    experiment = client.create_experiment(EXPERIMENT, artifact_location=str(folder / "artifacts"))
    rng = np.random.default_rng(0)
    now = int(time.time() * 1000)
    for model in MODELS:
        for loss in LOSSES:
            for seed in range(seeds):
                run = client.create_run(
                    experiment,
                    tags={"calibexp.run_key": f"{model}-{loss}-{seed}",
                          "mlflow.source.git.commit": "0" * 40,
                          "mlflow.runName": f"cifar10-{model}-{loss}-s{seed}"},
                )  # fmt: skip
                params = {"data.name": "cifar10", "model.name": model, "loss.name": loss,
                          "protocol": "torrvision", "seed": str(seed), "eval.ece_bins": "15",
                          "meta.name": "none", "train.epochs": str(EPOCHS)}  # fmt: skip
                if loss == "focal":
                    params["loss.gamma"] = "3.0"
                metrics = []
                for epoch in range(EPOCHS):
                    decay = np.exp(-epoch / 6)
                    for key, value in (
                        ("val/ece_15", 0.02 + 0.2 * decay + rng.normal(0, 0.005)),
                        ("val/nll", 0.25 + 1.5 * decay + rng.normal(0, 0.02)),
                        ("val/acc", 0.95 - 0.6 * decay + rng.normal(0, 0.005)),
                        ("evidence/p_t", 0.95 - 0.7 * decay),
                        ("evidence/focal", 0.05 + 0.5 * decay),
                    ):
                        metrics.append(Metric(key, float(value), now + epoch, epoch))
                for key, value in (
                    ("test/acc", 0.95 + rng.normal(0, 0.003)),
                    ("test/ece_15", 0.03 + rng.normal(0, 0.004)),
                    ("test_ts_grid/ece_15", 0.012 + rng.normal(0, 0.002)),
                    ("ts_grid/temperature", 1.5 + rng.normal(0, 0.2)),
                    ("test/adaece_15", 0.03 + rng.normal(0, 0.004)),
                    ("test/classece_15", 0.006 + rng.normal(0, 0.001)),
                    ("test/smece", 0.028 + rng.normal(0, 0.004)),
                    ("test/nll", 0.22 + rng.normal(0, 0.01)),
                    ("ood/svhn/msp/auroc", 0.9 + rng.normal(0, 0.02)),
                ):
                    metrics.append(Metric(key, float(value), now + EPOCHS, EPOCHS - 1))
                run_id = run.info.run_id
                for i in range(0, len(metrics), 1000):
                    client.log_batch(run_id, metrics=metrics[i : i + 1000])
                client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()])
                for epoch in DIAGRAM_EPOCHS:
                    client.log_dict(
                        run_id,
                        reliability_table(rng, epoch),
                        f"tables/reliability_val/epoch_{epoch:04d}.json",
                    )
                client.set_terminated(run_id, "FINISHED")
    return uri


def timed(command: list[str], uri: str, cwd: Path) -> float:
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    env["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    start = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"benchmark command failed: {' '.join(command)}\n{done.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-per-group", type=int, default=5, help="seeds per method")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        uri = build_store(folder, args.runs_per_group)
        runs = len(MODELS) * len(LOSSES) * args.runs_per_group
        print(f"store: {runs} runs built in {time.perf_counter() - start:.1f} s ({uri})")
        search = [sys.executable, "-c",
                  "import mlflow; e = mlflow.get_experiment_by_name('bench').experiment_id; "
                  "print(len(mlflow.search_runs([e], max_results=100000)))"]  # fmt: skip
        report = [sys.executable, "-m", "entrypoints.report", "--select",
                  f"experiment:{EXPERIMENT}", "--out", str(folder / "report")]  # fmt: skip
        baseline, made = [], []
        for _ in range(args.repeats):
            baseline.append(timed(search, uri, ROOT))
            made.append(timed(report, uri, ROOT))
        files = sorted(p.name for p in (folder / "report").iterdir())
        result = {
            "runs": runs,
            "search_runs_s": statistics.median(baseline),
            "report_s": statistics.median(made),
            "report_all_s": made,
            "files": files,
        }
    print(f"baseline  python + mlflow.search_runs of {runs} runs: {result['search_runs_s']:.2f} s")
    print(f"report    python -m entrypoints.report:          {result['report_s']:.2f} s "
          f"(median of {args.repeats}: {', '.join(f'{t:.2f}' for t in made)})")  # fmt: skip
    print(f"ratio     report / search_runs: {result['report_s'] / result['search_runs_s']:.2f}x")
    verdict = "meets" if result["report_s"] < 10 else "MISSES"
    print(f"target    under 10 s for a 100-run store: {verdict} ({result['report_s']:.2f} s)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
