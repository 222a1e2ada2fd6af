"""Run an Optuna study from a spec: every trial an MLflow child run of the study's run (the
MLproject ``study`` entry point). Several workers with the same spec and storage share one study.

    mlflow run . -e study --env-manager local -P spec=studies/smoke.yaml
    python entrypoints/study.py --spec studies/safcl_lambda_gamma.yaml \\
        --storage postgresql+psycopg2://optuna@db:5432/optuna
    python entrypoints/study.py --spec studies/smoke.yaml --prepare-only   # before fanning out
"""

from __future__ import annotations

import argparse
from pathlib import Path

from calibexp.cli import main_guard

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, help="a study spec, e.g. studies/smoke.yaml")
    parser.add_argument(
        "--storage",
        default="",
        help="SQLAlchemy URL (default: the spec's, else optuna.db beside a SQLite MLflow store)",
    )
    parser.add_argument(
        "--prepare-only",
        action="store_true",
        help="create the study and its MLflow run, run no trial (once, before several workers)",
    )
    args = parser.parse_args()

    def body() -> None:
        from calibexp.studies import load_spec
        from calibexp.studies.runner import default_storage, prepare, run_study

        spec = load_spec(args.spec, root=ROOT)
        if args.prepare_only:
            _, parent = prepare(spec, args.storage or spec.storage or default_storage())
            print(f"calibexp: study {spec.name} ready, MLflow run {parent}", flush=True)
            return
        study = run_study(spec, args.storage or None)
        print(f"calibexp: study {spec.name}: {len(study.trials)} trials", flush=True)
        for trial in study.best_trials:
            print(f"calibexp: best trial {trial.number}: {trial.values} {trial.params}", flush=True)

    main_guard(body)


if __name__ == "__main__":
    main()
