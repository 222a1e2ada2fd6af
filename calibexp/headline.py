"""A finished run summed up in a few lines: the MLflow run description (``mlflow.note.content``,
shown at the top of the run page) and the last thing the command prints.

    cifar10-resnet50-focal-s0 (configs/cifar10/resnet50/focal.yaml), test set:
    | test                      | acc %  | ECE-15 % | NLL    | smECE % |
    |---------------------------|--------|----------|--------|---------|
    | uncalibrated              | 95.10  | 3.60     | 0.2100 | 3.05    |
    | temperature T=1.52        | 95.10  | 0.90     | 0.1800 | 0.84    |

One row before calibration and one per calibrator of ``eval.calibrators`` (with its T, fitted on
val); OoD AUROC rows when the run logged ``ood/…/auroc`` metrics. Accuracy and calibration
errors in %, NLL in nats.
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
    for key in sorted(k for k in metrics if k.startswith("ood/") and k.endswith("auroc")):
        rows.append([f"{key} %", _percent(metrics[key]), "", "", ""])
    return rows


def headline(
    name: str,
    config: str | None,
    metrics: Mapping[str, float],
    bins: int,
    calibrators: Sequence[str],
) -> str:
    """The description: the run's name and config, then the table in Markdown."""
    rows = headline_rows(metrics, bins, calibrators)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    where = f" ({config})" if config else ""
    table = [line(rows[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    table += [line(row) for row in rows[1:]]
    return "\n".join([f"{name}{where}, test set:", "", *table])


def _percent(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.2f}"


def _plain(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"
