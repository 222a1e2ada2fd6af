"""OoD detection and calibration under shift of a finished run, logged into that run (the
MLproject ``ood`` entry point).

    mlflow run . -e ood --env-manager local -P run_id=<id> [-P sets="svhn cifar10_c"]
    python -m entrypoints.ood --run-id <id> [--sets "image_patches digits_c"]

The model is rebuilt from the run's ``config.yaml`` with the weights of its test checkpoint, the
temperature fitted on its val split, and ``ood/…``, ``ood_ts/…``, ``shift/…`` and ``shift_ts/…``
metrics, logits, tables and figures logged into the run, which stays FINISHED
(``calibexp.robustness``). Without ``--sets``: the sets of the run's dataset (digits:
image_patches and digits_c; CIFAR-10: svhn and cifar10_c).
"""

from __future__ import annotations

import argparse

from calibexp.cli import add_flag, main_guard, split_overrides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-id", required=True, help="the finished run to evaluate")
    parser.add_argument(
        "--sets", default="", help="evaluation sets, space-separated (default: the dataset's)"
    )
    parser.add_argument(
        "--checkpoint",
        default="",
        choices=["", "last", "best"],
        help="which checkpoint (default: the run's eval.test_checkpoint)",
    )
    add_flag(parser, "--extra-corruptions", "also a shift set's extra corruptions")
    parser.add_argument(
        "--overrides",
        default="",
        help="this machine's keys only, e.g. 'data.root=/mnt/data device=cuda'",
    )
    args = parser.parse_args()

    def body() -> None:
        from calibexp.reevaluate import robustness_of_run

        robustness_of_run(
            args.run_id,
            args.sets.split(),
            checkpoint=args.checkpoint or None,
            extra=args.extra_corruptions == "true",
            overrides=split_overrides(args.overrides, []),
        )

    main_guard(body)


if __name__ == "__main__":
    main()
