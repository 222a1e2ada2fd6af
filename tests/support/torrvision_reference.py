"""torrvision's calibration metrics (``Metrics/metrics.py``) written out bin by bin, with
float32 edges as its ``torch.linspace`` makes them: the independent oracles the metric tests
compare calibexp's vectorised versions against."""

from __future__ import annotations

import numpy as np
import torch


def adaece_reference(conf: np.ndarray, acc: np.ndarray, bins: int = 15) -> float:
    """torrvision's AdaptiveECELoss: equal-mass edges by np.interp, membership (lo, hi]."""
    n = len(conf)
    edges = np.interp(np.linspace(0, n, bins + 1), np.arange(n), np.sort(conf))
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        member = (conf > lo) & (conf <= hi)
        if member.any():
            total += member.mean() * abs(acc[member].mean() - conf[member].mean())
    return total


def classece_reference(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """torrvision's ClasswiseECELoss, class by class and bin by bin; ``probs`` float32 compared
    with float32 edges (torrvision's torch.linspace), means in float64."""
    n, k = probs.shape
    edges = torch.linspace(0, 1, bins + 1).numpy()
    per_class = []
    for c in range(k):
        p, hit = probs[:, c], (labels == c).astype(float)
        total = 0.0
        for lo, hi in zip(edges[:-1], edges[1:]):
            member = (p > lo) & (p <= hi)
            if member.any():
                total += member.mean() * abs(hit[member].mean() - p[member].astype(float).mean())
        per_class.append(total)
    return float(np.mean(per_class))


def ece_reference(conf: np.ndarray, acc: np.ndarray, bins: int = 15) -> float:
    """torrvision's ECELoss: float32 confidences against float32 edges, (lo, hi]."""
    edges = torch.linspace(0, 1, bins + 1).numpy()
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        member = (conf > lo) & (conf <= hi)
        if member.any():
            total += member.mean() * abs(acc[member].mean() - conf[member].astype(float).mean())
    return total


def mce_reference(conf: np.ndarray, acc: np.ndarray, bins: int = 15) -> float:
    edges = torch.linspace(0, 1, bins + 1).numpy()
    gaps = [
        abs(acc[m].mean() - conf[m].astype(float).mean())
        for lo, hi in zip(edges[:-1], edges[1:])
        if (m := (conf > lo) & (conf <= hi)).any()
    ]
    return max(gaps)
