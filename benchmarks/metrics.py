"""Metric-suite speed: median time of calibexp's full calibration-metric suite (acc, nll, brier,
conf, ece_15, adaece_15, classece_15, mce_15, ece_over_15, ece_under_15, smece) in one
``metric_suite`` call, against the reference libraries on the same data, on CPU: torchmetrics'
``multiclass_calibration_error`` (15 bins, L1; softmax included) plus ``relplot.smECE``
(confidence, correctness and the conversion to float64 numpy included).

    python benchmarks/metrics.py [--repeats 7]

Cases: N = 10^6, K = 10 and N = 10^5, K = 100, with logits ~ 3 * N(0, 1) and targets drawn
from their softmax, so the data is roughly calibrated and smECE's bandwidth search does its real
work. One warm-up call of each, then ``--repeats`` rounds that alternate suite / baseline so
drift in machine load hits both alike. For N = 10^6, K = 10 it also prints each metric alone.

Targets: full suite <= 1.0 s at N = 10^6, K = 10; ratio suite / baseline <= 1.0 in both cases.

Cost notes: the suite shares one softmax, one max and one argsort of the confidences (numpy's
on a CPU); adaptive ECE's edges and smECE's grids come from that sorted order (smECE: O(N)
prefix sums once, then O(G log N) per grid size and up to 11 FFT convolutions, where relplot
re-places the N samples and runs a direct O(G^2) convolution for every bandwidth); classwise
ECE bins only the probabilities above 1/M (at most M−1 per row) and takes bin 0 from the
column sums. The four equal-width-bin metrics share one binning.

Last measured: 2026-12-03 on a 2-core AMD EPYC x86_64 VM, 24 GiB, no GPU; Python 3.11.7, torch
2.14.1 (CPU), mlflow 3.17.2, optuna 5.1.0, numpy 2.4.6. N = 10^6, K = 10: suite 0.424 s vs 0.421 s
(ratio 1.01); N = 10^5, K = 100: 0.082 s vs 0.071 s (1.16); torchmetrics 1.9.0, relplot 1.0.3. Over
the ratio target on this machine (an earlier 2-core x86_64 host: 0.32 s vs 0.46 s, 0.69; 0.079 vs
0.088 s, 0.89).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Callable

import torch

BINS = 15
CASES = ((10**6, 10), (10**5, 100))
SUITE_TARGET_S = 1.0  # applies to the first case only
RATIO_TARGET = 1.0
BINNED = ("ece", "adaece", "classece", "mce", "ece_over", "ece_under")
UNBINNED = ("acc", "nll", "brier", "conf", "smece")


def roughly_calibrated_data(n: int, k: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ~ 3 * N(0, 1); each target drawn from the softmax of its logits."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, generator=gen) * 3
    targets = torch.multinomial(torch.softmax(logits, 1), 1, generator=gen).squeeze(1)
    return logits, targets


def run_suite(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    from calibexp.metrics import metric_suite

    return metric_suite(logits, targets, bins=BINS)


def run_baseline(logits: torch.Tensor, targets: torch.Tensor) -> tuple[float, float]:
    """torchmetrics ECE + relplot smECE, called the way a user would call them."""
    import relplot
    from torchmetrics.functional.classification import multiclass_calibration_error

    probs = torch.softmax(logits, 1)
    ece = multiclass_calibration_error(
        probs, targets, num_classes=logits.shape[1], n_bins=BINS, norm="l1"
    )
    conf, predicted = probs.max(1)
    correct = (predicted == targets).double().cpu().numpy()
    smece = relplot.smECE(conf.double().cpu().numpy(), correct)
    return float(ece), float(smece)


def seconds(fn: Callable[..., object], *args: object) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def suite_and_baseline_medians(
    logits: torch.Tensor, targets: torch.Tensor, repeats: int
) -> tuple[float, float]:
    run_suite(logits, targets)  # warm-up
    run_baseline(logits, targets)
    suite_times, baseline_times = [], []
    for _ in range(repeats):
        suite_times.append(seconds(run_suite, logits, targets))
        baseline_times.append(seconds(run_baseline, logits, targets))
    return statistics.median(suite_times), statistics.median(baseline_times)


def build_metric(name: str, p) -> float:
    from calibexp.metrics import METRICS

    if name in BINNED:
        return float(METRICS.build(name, p, bins=BINS))
    return float(METRICS.build(name, p))


def prepare_shared(p) -> None:
    """Fill the ``Predictions`` caches every metric reads from."""
    for attr in ("probs", "confidence", "correct"):
        getattr(p, attr)


def per_metric_medians(
    logits: torch.Tensor, targets: torch.Tensor, repeats: int
) -> dict[str, float]:
    """Median time of each metric alone on a fresh ``Predictions`` whose shared pieces (probs,
    confidence, correctness) are computed outside the timed region and reported as their own
    row."""
    from calibexp.metrics import Predictions

    shared = "shared: softmax, confidence, correctness"
    names = (*UNBINNED[:4], *BINNED, UNBINNED[4])
    times: dict[str, list[float]] = {shared: [], **{name: [] for name in names}}

    for round_ in range(repeats + 1):  # round 0 is the warm-up
        p = Predictions(logits, targets)
        prep = seconds(prepare_shared, p)
        per_name = {name: seconds(build_metric, name, p) for name in names}
        if round_ > 0:
            times[shared].append(prep)
            for name, t in per_name.items():
                times[name].append(t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def case_line(n: int, k: int, suite: float, baseline: float) -> str:
    ratio = suite / baseline
    target = (
        f"targets: suite <= {SUITE_TARGET_S} s, ratio <= {RATIO_TARGET}"
        if (n, k) == CASES[0]
        else f"target: ratio <= {RATIO_TARGET}"
    )
    return (
        f"N={n} K={k}  suite median {suite:.3f} s  (torchmetrics ECE + relplot smECE: "
        f"{baseline:.3f} s)  ratio {ratio:.2f}   {target}"
    )


def print_breakdown(medians: dict[str, float]) -> None:
    width = max(len(name) for name in medians)
    for name, t in medians.items():
        label = name if name.startswith("shared") else f"{name}_{BINS}" if name in BINNED else name
        print(f"  {label:<{width}}  {t * 1000:8.1f} ms")
    print(f"  {'sum':<{width}}  {sum(medians.values()) * 1000:8.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(
        f"calibration-metric suite vs torchmetrics + relplot on CPU ({args.repeats} repeats, "
        f"medians; torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs)"
    )
    breakdown = None
    for n, k in CASES:
        logits, targets = roughly_calibrated_data(n, k)
        suite, baseline = suite_and_baseline_medians(logits, targets, args.repeats)
        print(case_line(n, k, suite, baseline), flush=True)
        if (n, k) == CASES[0]:
            breakdown = per_metric_medians(logits, targets, args.repeats)
    n, k = CASES[0]
    print(f"per-metric breakdown, N={n} K={k} (median of each metric alone):")
    print_breakdown(breakdown)


if __name__ == "__main__":
    main()
