"""The end-of-run evaluation, shared by ``train`` and ``evaluate`` so both log the same things
computed the same way.

On test, once: the metric suite before calibration (``test/…``) and after each calibrator of
``eval.calibrators``, fitted on val (``test_ts/…`` and ``ts/temperature`` for the NLL-fitted
temperature, ``test_ts_grid/…`` and ``ts_grid/temperature`` for torrvision's ECE grid); the val
and test logits (``logits/{val,test}.npz``) so any metric can be recomputed without retraining;
a reliability diagram of each (``plots/reliability_<split>.png``, data in
``tables/reliability_<split>.json``) and all of them side by side
(``plots/reliability_test_before_after.png``).

On a dataset of several domains (``DataBundle.domain_names``), the same suite per domain of
test, before and after each calibrator: ``test/<domain>/…``, ``test_ts/<domain>/…`` (held-out
domains too: the temperature is fitted on val, which holds only the seen ones), and the table
``tables/domains.json``, one row per domain and variant with whether training saw it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np
import torch

from calibexp.data.loader import DeviceLoader
from calibexp.engine import predict
from calibexp.metrics import CALIBRATORS, Predictions, suite_of
from calibexp.metrics.registry import metric_key
from calibexp.plots import plot_reliability, plot_reliability_grid, reliability_of

BEFORE_AFTER = "plots/reliability_test_before_after.png"
DOMAIN_TABLE = "tables/domains.json"


def headline_keys(bins: int) -> list[str]:
    """The test metrics a finished run is summed up by: accuracy, ECE and NLL, before and after
    temperature scaling."""
    scaled = f"test_{CALIBRATORS.info('temperature')['split']}"
    return [
        metric_key("test", "acc", bins),
        metric_key("test", "ece", bins),
        metric_key(scaled, "ece", bins),
        metric_key("test", "nll", bins),
        metric_key(scaled, "nll", bins),
    ]


def evaluate_and_log(
    run: Any,
    model: torch.nn.Module,
    val_loader: DeviceLoader,
    test_loader: DeviceLoader,
    autocast: Any,
    *,
    bins: int,
    calibrators: list[str],
    step: int,
    domain_names: Sequence[str] = (),
    seen_domains: Sequence[str] = (),
) -> dict[str, float]:
    val_logits, val_targets = predict(model, val_loader, autocast)
    test_logits, test_targets = predict(model, test_loader, autocast)
    metrics: dict[str, float] = {}
    variants = [("test", test_logits, "test, uncalibrated")]
    for name in calibrators:
        split = CALIBRATORS.info(name)["split"]
        temperature = CALIBRATORS.build(name, val_logits, val_targets, bins=bins)
        metrics[f"{split}/temperature"] = temperature
        title = f"test, {name} T={temperature:.3g}"
        variants.append((f"test_{split}", test_logits / temperature, title))
    panels = []
    for split, logits, title in variants:
        p = Predictions(logits, test_targets)
        metrics.update({f"{split}/{k}": v for k, v in suite_of(p, bins=bins).items()})
        data = reliability_of(p, bins=bins)  # shares the suite's softmax and smECE bandwidth
        run.log_figure(partial(plot_reliability, data, title), f"plots/reliability_{split}.png")
        run.log_json(data.to_dict(), f"tables/reliability_{split}.json")
        panels.append((data, title))
    run.log_figure(partial(plot_reliability_grid, panels), BEFORE_AFTER)
    if domain_names:
        rows = per_domain(variants, test_targets, test_loader.domains, domain_names, bins)
        for row in rows:
            row["seen"] = row["domain"] in seen_domains
            where = f"{row['split']}/{row['domain']}"
            metrics.update({f"{where}/{k}": v for k, v in row["metrics"].items()})
        run.log_json(rows, DOMAIN_TABLE)
    for split, logits, targets in (
        ("val", val_logits, val_targets),
        ("test", test_logits, test_targets),
    ):
        path = run.stage(f"logits/{split}.npz")
        np.savez_compressed(path, logits=logits.cpu().numpy(), targets=targets.cpu().numpy())
        run.upload(path, f"logits/{split}.npz")
    run.log_metrics(metrics, step=step)  # last: once they are there, so is everything above
    return metrics


def per_domain(
    variants: list[tuple[str, torch.Tensor, str]],
    targets: torch.Tensor,
    domains: torch.Tensor,
    names: Sequence[str],
    bins: int,
) -> list[dict[str, Any]]:
    """The metric suite of each (variant, domain): one row each, with the variant's ``split``
    (``test``, ``test_ts``, …), the ``domain``, its ``n`` test samples and its ``metrics``."""
    rows = []
    for split, logits, _ in variants:
        for index, name in enumerate(names):
            mask = domains == index
            suite = suite_of(Predictions(logits[mask], targets[mask]), bins=bins)
            rows.append({"split": split, "domain": name, "n": int(mask.sum()), "metrics": suite})
    return rows
