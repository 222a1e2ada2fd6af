"""Check a dataset root: load a dataset the way a run does and print what was found (the
MLproject ``data`` entry point).

    mlflow run . -e data --env-manager local -P dataset=cifar10 -P root=/data
    python entrypoints/data.py --dataset cifar10_c --root /data corruption=fog severity=3

Missing or damaged files give the same one-line error as a run (exit 2), naming the expected
path, the layout, where to get the files and the key to change.
"""

from __future__ import annotations

import argparse
import os

from calibexp.cli import main_guard, split_overrides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="cifar10, cifar100, tiny_imagenet, ...")
    parser.add_argument(
        "--root", default="", help="the data root (default: $CALIBEXP_DATA, else ./data)"
    )
    parser.add_argument("--params", default="", help='more builder keys: "severity=3 ..."')
    parser.add_argument("extra", nargs="*", help="more builder keys as key=value")
    args = parser.parse_args()

    def body() -> None:
        import yaml

        from calibexp.data.check import check_dataset
        from calibexp.errors import CalibexpError

        params = {}
        for item in split_overrides(args.params, args.extra):
            key, sep, value = item.partition("=")
            if not sep:
                raise CalibexpError(f"'{item}' is not of the form key=value")
            params[key] = yaml.safe_load(value)
        if args.dataset != "digits":
            params.setdefault("root", args.root or os.environ.get("CALIBEXP_DATA", "data"))
        try:
            report = check_dataset(args.dataset, params)
        except TypeError as err:  # a key the builder does not take
            raise CalibexpError(f"{args.dataset}: {err}") from None
        print(report, flush=True)

    main_guard(body)


if __name__ == "__main__":
    main()
