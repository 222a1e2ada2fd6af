"""Which entries of a column a paired test over seeds cannot separate from the best one.

Within one block of rows (``compare_within``: the same dataset and model), the best entry is the
one with the best mean (lowest, or highest for accuracy and AUROC). Every other entry is
compared with it by a two-sided **paired t-test over matched seeds** (the same seed trains both
methods on the same split, so the seed is the pairing):

    d_s = x_best,s − x_other,s,   t = mean(d) / (sd(d) / √n),   df = n − 1,   sd with ddof = 1

and the m = (entries − 1) p-values of the block are **Holm-corrected** (Holm, Scand. J. Stat.
1979): sorted ascending, p̃_(i) = max_{j ≤ i} min(1, (m − j + 1) · p_(j)). An entry whose p̃ is
at least α cannot be told apart from the best and is bold with it. If every d_s is equal the
t-statistic is undefined: p = 1 when they are all 0 (the same numbers), else 0 (one method is
better on every seed by the same amount).

Only entries trained on the same seeds as the best are tested; with other seed sets (a missing
seed), or fewer than 2 seeds, the entry is marked not tested instead (paired tests need pairs).
scipy.stats.ttest_rel computes the same t and p (tests/reports/test_significance.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import stdtr


@dataclass(frozen=True)
class Verdict:
    best: bool  # the best mean of its block
    bold: bool  # the best, or not separable from it
    tested: bool  # a paired test against the best was made
    p_adjusted: float  # Holm-adjusted p against the best (nan: the best itself, or not tested)
    reason: str = ""  # why not tested


def paired_p(best: list[float], other: list[float]) -> float:
    """Two-sided paired t-test p-value (the module's docstring)."""
    d = np.asarray(best, dtype=float) - np.asarray(other, dtype=float)
    if np.all(d == d[0]):
        return 1.0 if d[0] == 0 else 0.0
    t = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))
    # Student's t CDF from scipy.special: scipy.stats' ttest_rel gives the same p (tested) but
    # its import alone is ~0.75 s of a report's ~8.
    return float(2.0 * stdtr(len(d) - 1, -abs(t)))


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input's order."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def verdicts(
    entries: dict[str, dict[int, float]], better: str | None, alpha: float
) -> dict[str, Verdict]:
    """``entries``: row label -> {seed: value} of one block and column (no NaN)."""
    live = {label: seeds for label, seeds in entries.items() if seeds}
    if better is None or not live:
        return {label: Verdict(False, False, False, math.nan) for label in entries}
    means = {label: float(np.mean(list(seeds.values()))) for label, seeds in live.items()}
    target = min(means.values()) if better == "min" else max(means.values())
    best = [label for label, mean in means.items() if mean == target]
    tested, untested = {}, {}
    anchor = live[best[0]]
    for label, seeds in live.items():
        if label in best:
            continue
        if set(seeds) != set(anchor):
            untested[label] = (
                f"seeds {sorted(seeds)} differ from the best's {sorted(anchor)}: not tested"
            )
        elif len(seeds) < 2:
            untested[label] = "fewer than 2 seeds: not tested"
        else:
            matched = sorted(anchor)
            tested[label] = paired_p([anchor[s] for s in matched], [seeds[s] for s in matched])
    adjusted = dict(zip(tested, holm(list(tested.values()))))
    out = {}
    for label in entries:
        if label in best:
            out[label] = Verdict(True, True, False, math.nan)
        elif label in adjusted:
            p = adjusted[label]
            out[label] = Verdict(False, p >= alpha, True, p)
        else:
            out[label] = Verdict(False, False, False, math.nan, untested.get(label, "no values"))
    return out
