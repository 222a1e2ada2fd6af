"""Train one experiment into an MLflow run (the MLproject ``train`` entry point), as the run
registry decides: a config already FINISHED in the experiment, or held by a live worker, is not
trained again (exit 0); a dead one is resumed; ``--force`` trains a new run anyway.

    mlflow run . -e train --env-manager local -P config=configs/demo.yaml \
        -P overrides="train.epochs=2"
    python entrypoints/train.py --config configs/demo.yaml optim.lr=0.05 train.epochs=2
    python entrypoints/train.py --resume <run id> [data.root=/other/disk]   # take a dead run over

Under ``mlflow run`` the launcher run MLflow created is marked as pointing at the run that
trains (``calibexp.launcher_of``); run directly, nothing else is created.
"""

from __future__ import annotations

import argparse

from calibexp.cli import add_flag, main_guard, split_overrides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/demo.yaml", help="experiment YAML")
    parser.add_argument("--overrides", default="", help='space-separated "dotted.key=value" items')
    parser.add_argument("--resume", default="", help="id of a dead (KILLED/FAILED/stale) run")
    add_flag(parser, "--force", "train a new run even if the config was trained (calibexp.forced)")
    parser.add_argument("more_overrides", nargs="*", metavar="key=value")
    args = parser.parse_args()

    def body() -> None:
        from calibexp.config import load_config
        from calibexp.errors import CalibexpError
        from calibexp.run import config_for_resume, run_experiment
        from calibexp.tracking.run import tracking_client

        overrides = split_overrides(args.overrides, args.more_overrides)
        if args.resume:
            cfg = config_for_resume(tracking_client(), args.resume, overrides)
            outcome = run_experiment(cfg, resume=args.resume)
        else:
            cfg = load_config(args.config, overrides)
            outcome = run_experiment(cfg, force=args.force == "true")
        if outcome.state == "gave_up":
            raise CalibexpError(outcome.message)

    main_guard(body)


if __name__ == "__main__":
    main()
