"""Train a grid of configs through the run registry (the MLproject ``sweep`` entry point). Start
it on as many machines (or GPUs) as you like: each config is trained exactly once, a dead run
is resumed by the next worker that comes along.

    mlflow run . -e sweep --env-manager local -P spec=studies/sweep_demo.yaml
    python entrypoints/sweep.py --spec studies/sweep_demo.yaml --wait true
"""

from __future__ import annotations

import argparse
from pathlib import Path

from calibexp.cli import add_flag, main_guard

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, help="a sweep spec, e.g. studies/sweep_demo.yaml")
    add_flag(
        parser,
        "--wait",
        "return only when every config is FINISHED, taking over any whose worker dies "
        "(default: also return when the rest is held by live workers)",
    )
    args = parser.parse_args()

    def body() -> None:
        from calibexp.sweeps import load_sweep
        from calibexp.sweeps.worker import run_sweep

        run_sweep(load_sweep(args.spec, root=ROOT), wait=args.wait == "true")

    main_guard(body)


if __name__ == "__main__":
    main()
