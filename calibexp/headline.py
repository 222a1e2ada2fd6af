"""A finished run summed up in a few lines: the MLflow run description (``mlflow.note.content``,
shown at the top of the run page) and the last thing the command prints.

    cifar10-resnet50-focal-s0 (configs/cifar10/resnet50/focal.yaml), test set:
    | test                      | acc %  | ECE-15 % | NLL    | smECE % |
    |---------------------------|--------|----------|--------|---------|
    | uncalibrated              | 95.10  | 3.60     | 0.2100 | 3.05    |
    | temperature T=1.52        | 95.10  | 0.90     | 0.1800 | 0.84    |

One row before calibration and one per calibrator of ``eval.calibrators`` (with its T, fitted on
val); for each shift set the run logged (``calibexp.robustness``), the mean over its corruptions
at severity 5, before and after temperature scaling; and for each OoD set a second table of the
MSP score's detection metrics. Accuracy, calibration errors and detection metrics in %, NLL in
nats.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from calibexp.metrics import CALIBRATORS
from calibexp.metrics.registry import logged_name

DESCRIPTION_TAG = "mlflow.note.content"


def headline_rows(
    metrics: Mapping[str, float], bins: int, calibrators: Sequence[str]
) -> list[list[str]]:
    """The table's rows (header first) from a run's logged metrics."""
    ece = logged_name("ece", bins)
    rows = [["test", "acc %", f"ECE-{bins} %", "NLL", "smECE %"]]
    variants = [("test", "uncalibrated")]
    for name in calibrators:
        split = CALIBRATORS.info(name)["split"]
        temperature = metrics.get(f"{split}/temperature")
        shown = f" T={temperature:.3g}" if temperature is not None else ""
        variants.append((f"test_{split}", f"{name}{shown}"))
    for prefix, label in variants:
        if f"{prefix}/acc" not in metrics:
            continue
        rows.append(
            [
                label,
                _percent(metrics.get(f"{prefix}/acc")),
                _percent(metrics.get(f"{prefix}/{ece}")),
                _plain(metrics.get(f"{prefix}/nll")),
                _percent(metrics.get(f"{prefix}/smece")),
            ]
        )
    for key in sorted(k for k in metrics if k.startswith("shift/") and k.endswith("/mean/5/acc")):
        name = key.split("/")[1]
        for prefix, after in (("shift", ""), ("shift_ts", ", T")):
            where = f"{prefix}/{name}/mean/5"
            if f"{where}/acc" in metrics:
                cells = [metrics.get(f"{where}/{k}") for k in ("acc", ece, "nll", "smece")]
                rows.append(
                    [f"{name} severity 5{after}", _percent(cells[0]), _percent(cells[1]),
                     _plain(cells[2]), _percent(cells[3])]
                )  # fmt: skip
    return rows


OOD_COLUMNS = (("auroc", "AUROC %"), ("aupr_in", "AUPR-In %"), ("aupr_out", "AUPR-Out %"),
               ("fpr95", "FPR@95 %"))  # fmt: skip


def ood_rows(metrics: Mapping[str, float]) -> list[list[str]]:
    """The OoD table (header first; only a header when no OoD set was evaluated): the MSP
    score's detection metrics per set, before temperature scaling."""
    rows = [["OoD set (MSP)", *(label for _, label in OOD_COLUMNS)]]
    for key in sorted(k for k in metrics if k.startswith("ood/") and k.endswith("/msp/auroc")):
        name = key.split("/")[1]
        rows.append([name, *(_percent(metrics.get(f"ood/{name}/msp/{m}")) for m, _ in OOD_COLUMNS)])
    return rows


def headline(
    name: str,
    config: str | None,
    metrics: Mapping[str, float],
    bins: int,
    calibrators: Sequence[str],
) -> str:
    """The description: the run's name and config, then the tables in Markdown."""
    where = f" ({config})" if config else ""
    lines = [f"{name}{where}, test set:", "", *_markdown(headline_rows(metrics, bins, calibrators))]
    ood = ood_rows(metrics)
    if len(ood) > 1:
        lines += ["", *_markdown(ood)]
    return "\n".join(lines)


def _markdown(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    table = [line(rows[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    return table + [line(row) for row in rows[1:]]


def _percent(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.2f}"


def _plain(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"
