"""Train one experiment into an MLflow run (the MLproject ``train`` entry point).

    mlflow run . -e train --env-manager local -P config=configs/demo.yaml \
        -P overrides="train.epochs=2"
    python entrypoints/train.py --config configs/demo.yaml optim.lr=0.05 train.epochs=2
    python entrypoints/train.py --resume <run id>      # continue a KILLED/FAILED run

Under ``mlflow run`` it logs into the run MLflow created (``MLFLOW_RUN_ID``); run directly it
creates its own run in ``tracking.experiment``.
"""

from __future__ import annotations

import argparse

from calibexp.cli import main_guard, split_overrides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/demo.yaml", help="experiment YAML")
    parser.add_argument("--overrides", default="", help='space-separated "dotted.key=value" items')
    parser.add_argument("--resume", default="", help="id of a KILLED/FAILED run to continue")
    parser.add_argument("more_overrides", nargs="*", metavar="key=value")
    args = parser.parse_args()

    def body() -> None:
        from calibexp.config import load_config
        from calibexp.errors import CalibexpError
        from calibexp.run import run_experiment

        overrides = split_overrides(args.overrides, args.more_overrides)
        if args.resume:
            if overrides:
                raise CalibexpError(
                    "resume continues a run with its own logged config; "
                    "drop the overrides (or start a new run with them)"
                )
            run_experiment(resume=args.resume)
        else:
            run_experiment(load_config(args.config, overrides))

    main_guard(body)


if __name__ == "__main__":
    main()
