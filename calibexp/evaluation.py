"""The end-of-run evaluation, shared by ``train`` and ``evaluate`` so both log the same things
computed the same way.

On test, once: the metric suite before (``test/…``) and after (``test_ts/…``) temperature
scaling, with T fitted on val by NLL (``ts/temperature``); the val and test logits
(``logits/{val,test}.npz``) so any metric can be recomputed without retraining; and a
reliability diagram of each (``plots/reliability_test{,_ts}.png`` with its data as
``tables/reliability_test{,_ts}.json``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from calibexp.data.loader import DeviceLoader
from calibexp.engine import predict
from calibexp.metrics import fit_temperature, metric_suite
from calibexp.plots import plot_reliability, prepare_reliability


def evaluate_and_log(
    run: Any,
    model: torch.nn.Module,
    val_loader: DeviceLoader,
    test_loader: DeviceLoader,
    autocast: Any,
    *,
    bins: int,
    step: int,
) -> dict[str, float]:
    val_logits, val_targets = predict(model, val_loader, autocast)
    test_logits, test_targets = predict(model, test_loader, autocast)
    temperature = fit_temperature(val_logits, val_targets)
    metrics: dict[str, float] = {"ts/temperature": temperature}
    for split, logits in (("test", test_logits), ("test_ts", test_logits / temperature)):
        metrics.update(
            {f"{split}/{k}": v for k, v in metric_suite(logits, test_targets, bins=bins).items()}
        )
        data = prepare_reliability(logits, test_targets, bins=bins)
        title = (
            "test" if split == "test" else f"test after temperature scaling (T = {temperature:.3f})"
        )
        run.log_figure(plot_reliability(data, title=title), f"plots/reliability_{split}.png")
        run.log_json(data.to_dict(), f"tables/reliability_{split}.json")
    for split, logits, targets in (
        ("val", val_logits, val_targets),
        ("test", test_logits, test_targets),
    ):
        path = run.stage(f"logits/{split}.npz")
        np.savez_compressed(path, logits=logits.cpu().numpy(), targets=targets.cpu().numpy())
        run.upload(path, f"logits/{split}.npz")
    run.log_metrics(metrics, step=step)  # last: once they are there, so is everything above
    for key in ("acc", "nll", f"ece_{bins}"):
        print(
            f"test/{key} {metrics[f'test/{key}']:.4f} -> test_ts/{key} "
            f"{metrics[f'test_ts/{key}']:.4f}",
            flush=True,
        )
    print(f"temperature {temperature:.4f}", flush=True)
    return metrics
