"""A paper's table and figures from the runs in the MLflow store (the MLproject ``report``
entry point).

    mlflow run . -e report --env-manager local -P select=sweep:studies/sweep_demo.yaml \
        -P out=reports/sweep-demo
    python -m entrypoints.report --select studies/report_demo.yaml --out reports/demo

Writes table.md, table.tex, table.csv, runs.csv and the figures into ``--out`` and logs them to
one report run (``calibexp.reports``); prints the Markdown table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from calibexp.cli import main_guard


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--select",
        required=True,
        help="sweep:<spec>, study:<name>, experiment:<name>[,<name>], filter:<MLflow filter> "
        "(';' between parts), or a report spec such as studies/report_demo.yaml",
    )
    parser.add_argument("--out", default="", help="folder for the files (default reports/<name>)")
    parser.add_argument("--name", default="", help="the report's name (default from select)")
    parser.add_argument("--group-by", default="", help="config keys, e.g. 'dataset model loss'")
    parser.add_argument("--columns", default="", help="metric keys (default: the papers' columns)")
    parser.add_argument("--compare-within", default="", help="group keys of a block of rows")
    parser.add_argument("--published", default="", choices=["", "true", "false"])
    args = parser.parse_args()

    def body() -> None:
        from calibexp.reports import make_report, report_spec
        from calibexp.reports.runner import mark_report_launcher

        mark_report_launcher(args.select)
        spec = report_spec(
            args.select, args.name, args.group_by, args.columns, args.compare_within,
            args.published,
        )  # fmt: skip
        out = Path(args.out or f"reports/{spec.name}")
        report = make_report(spec, out)
        print((out / "table.md").read_text(), flush=True)
        print(
            f"calibexp: report {spec.name}: {', '.join(report.written)} in {out}, logged to "
            f"MLflow run {report.run_id}",
            flush=True,
        )

    main_guard(body)


if __name__ == "__main__":
    main()
