"""Re-evaluate a finished run's checkpoint on test into a new, linked MLflow run (the MLproject
``evaluate`` entry point).

    mlflow run . -e evaluate --env-manager local -P run_id=<id>
    python entrypoints/evaluate.py --run-id <id> [--checkpoint best]

The model and data are rebuilt from the source run's ``config.yaml``, the weights loaded from its
``checkpoints/<last|best>.pt`` (``torch.load(weights_only=True)``), and the same end-of-run
evaluation as ``train`` is logged: ``test/…``, ``test_ts/…``, logits and reliability diagrams.
"""

from __future__ import annotations

import argparse

from calibexp.cli import main_guard


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-id", required=True, help="the run whose checkpoint to evaluate")
    parser.add_argument(
        "--checkpoint",
        default="",
        choices=["", "last", "best"],
        help="which checkpoint (default: the run's eval.test_checkpoint)",
    )
    args = parser.parse_args()

    def body() -> None:
        from calibexp.reevaluate import reevaluate

        reevaluate(args.run_id, args.checkpoint or None)

    main_guard(body)


if __name__ == "__main__":
    main()
