"""calibexp.reports.significance: the paired t-test, Holm's correction and the bold verdicts,
each against numbers written out here (an oracle t-test, Holm by hand)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from calibexp.reports.significance import holm, paired_p, verdicts


def oracle_p(a: list[float], b: list[float]) -> float:
    """The two-sided paired t-test written out: d = a - b, t = mean(d) / (sd(d) / sqrt(n))."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n = len(d)
    t = d.mean() / (d.std(ddof=1) / math.sqrt(n))
    return float(2 * stats.t.sf(abs(t), n - 1))


@pytest.mark.parametrize("n", [3, 5, 10])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_paired_p_equals_the_written_out_t_test(n, seed):
    """paired_p = the hand-computed p and scipy's ttest_rel, to 1e-12."""
    rng = np.random.default_rng(seed)
    a = rng.normal(0.1, 0.02, n).tolist()
    b = (np.asarray(a) + rng.normal(0.005, 0.01, n)).tolist()
    p = paired_p(a, b)
    assert abs(p - oracle_p(a, b)) <= 1e-12
    assert abs(p - float(stats.ttest_rel(a, b).pvalue)) <= 1e-12
    assert 0.0 < p < 1.0


def test_paired_p_known_value():
    """d = [1, 2, 3]: t = 2 / (1 / sqrt 3) = 2 sqrt 3 on 2 df, p = 2 * t.sf(2 sqrt 3, 2)."""
    p = paired_p([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    assert abs(p - 2 * stats.t.sf(2 * math.sqrt(3), 2)) <= 1e-12
    # t.sf(t, 2) = (1 - t / sqrt(t^2 + 2)) / 2 in closed form: p = 1 - sqrt(12 / 14)
    assert abs(p - (1 - math.sqrt(12 / 14))) <= 1e-12


def test_paired_p_is_symmetric():
    """Swapping the two methods changes the sign of t, not the two-sided p."""
    a, b = [0.11, 0.13, 0.12, 0.16], [0.12, 0.15, 0.11, 0.19]
    assert abs(paired_p(a, b) - paired_p(b, a)) <= 1e-15


def test_paired_p_all_differences_zero_is_one():
    """The same numbers on every seed: nothing separates them, p = 1."""
    assert paired_p([0.1, 0.2, 0.3], [0.1, 0.2, 0.3]) == 1.0


def test_paired_p_constant_non_zero_difference_is_zero():
    """Better by exactly the same amount on every seed: p = 0 (t would be infinite)."""
    assert paired_p([1.0, 2.0, 3.0], [0.0, 1.0, 2.0]) == 0.0
    assert paired_p([0.0, 1.0, 2.0, 5.0], [0.5, 1.5, 2.5, 5.5]) == 0.0


def test_holm_hand_computed():
    """p = [0.01, 0.04, 0.03, 0.005], m = 4: sorted 0.005*4 = 0.02, 0.01*3 = 0.03,
    0.03*2 = 0.06, 0.04*1 = 0.04 -> running max 0.06; back in input order."""
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02], abs=1e-15)


def test_holm_caps_at_one_and_keeps_order():
    """p = [0.3, 0.6, 0.2]: 0.2*3 = 0.6, 0.3*2 = 0.6, min(1, 0.6*1) -> max(0.6, 0.6) = 0.6;
    p = [0.5, 0.4]: 0.4*2 = 0.8, 0.5*1 = 0.5 -> 0.8."""
    assert holm([0.3, 0.6, 0.2]) == pytest.approx([0.6, 0.6, 0.6], abs=1e-15)
    assert holm([0.5, 0.4]) == pytest.approx([0.8, 0.8], abs=1e-15)
    assert holm([0.6, 0.7, 0.9]) == [1.0, 1.0, 1.0]  # 3*0.6 = 1.8 capped at 1


def test_holm_single_and_empty():
    """One p-value is its own adjustment (m = 1); none gives none."""
    assert holm([0.042]) == [0.042]
    assert holm([]) == []


def test_holm_monotone_and_bounded():
    """Adjusted p follow the raw order, are never below the raw p and never above 1."""
    rng = np.random.default_rng(7)
    p = rng.uniform(0, 0.6, 12).tolist()
    adjusted = holm(p)
    order = np.argsort(p)
    assert all(adjusted[i] <= adjusted[j] for i, j in zip(order, order[1:]))
    assert all(raw <= adj <= 1.0 for raw, adj in zip(p, adjusted))
    # the smallest raw p is multiplied by m = 12, capped at 1 when above 1/12
    smallest = order[0]
    assert adjusted[smallest] == pytest.approx(min(1.0, 12 * p[smallest]), abs=1e-15)


def test_verdicts_best_by_min_and_by_max():
    """The lowest mean is best under min, the highest under max; only it is best."""
    entries = {
        "low": {0: 0.10, 1: 0.12},
        "mid": {0: 0.20, 1: 0.23},
        "high": {0: 0.30, 1: 0.35},
    }
    by_min = verdicts(entries, "min", 0.05)
    assert [k for k, v in by_min.items() if v.best] == ["low"]
    assert by_min["low"].bold and not by_min["low"].tested
    assert math.isnan(by_min["low"].p_adjusted)
    by_max = verdicts(entries, "max", 0.05)
    assert [k for k, v in by_max.items() if v.best] == ["high"]


def test_verdicts_noise_bold_and_clearly_worse_not_bold():
    """Against the best: a method within noise is bold, one worse on every seed by varying
    amounts is not; p_adjusted = Holm (m = 2) of the oracle p-values, by hand."""
    best = {0: 0.050, 1: 0.062, 2: 0.045, 3: 0.058, 4: 0.052}
    noisy = {0: 0.056, 1: 0.060, 2: 0.051, 3: 0.057, 4: 0.054}  # d = -6, +2, -6, +1, -2 (e-3)
    worse = {0: 0.090, 1: 0.110, 2: 0.080, 3: 0.101, 4: 0.095}  # d = -40, -48, -35, -43, -43
    seeds = [0, 1, 2, 3, 4]
    p_noisy = oracle_p([best[s] for s in seeds], [noisy[s] for s in seeds])
    p_worse = oracle_p([best[s] for s in seeds], [worse[s] for s in seeds])
    assert p_worse < p_noisy  # so Holm multiplies p_worse by 2 and p_noisy by 1
    holm_worse = min(1.0, 2 * p_worse)
    holm_noisy = max(holm_worse, min(1.0, p_noisy))
    assert holm_noisy >= 0.05 > holm_worse  # the case is what it claims to be

    out = verdicts({"best": best, "noisy": noisy, "worse": worse}, "min", 0.05)
    assert out["best"].best and out["best"].bold
    assert out["noisy"].tested and out["noisy"].bold and not out["noisy"].best
    assert out["worse"].tested and not out["worse"].bold and not out["worse"].best
    assert abs(out["noisy"].p_adjusted - holm_noisy) <= 1e-12
    assert abs(out["worse"].p_adjusted - holm_worse) <= 1e-12


def test_verdicts_alpha_is_the_threshold():
    """The same block: at alpha above the noisy entry's adjusted p, it is no longer bold."""
    best = {0: 0.050, 1: 0.062, 2: 0.045, 3: 0.058, 4: 0.052}
    noisy = {0: 0.056, 1: 0.060, 2: 0.051, 3: 0.057, 4: 0.054}
    p = oracle_p(list(best.values()), list(noisy.values()))  # m = 1: Holm leaves it as is
    assert verdicts({"b": best, "n": noisy}, "min", p * 0.999)["n"].bold
    assert not verdicts({"b": best, "n": noisy}, "min", p * 1.001)["n"].bold


def test_verdicts_other_seeds_not_tested():
    """An entry on seeds {0, 1} against a best on {0, 1, 2}: not tested, not bold, and the
    reason names both seed sets."""
    out = verdicts({"best": {0: 0.1, 1: 0.11, 2: 0.12}, "partial": {0: 0.1, 1: 0.2}}, "min", 0.05)
    v = out["partial"]
    assert not v.tested and not v.bold and not v.best
    assert math.isnan(v.p_adjusted)
    assert "seeds [0, 1]" in v.reason and "[0, 1, 2]" in v.reason


def test_verdicts_one_seed_not_tested():
    """n = 1 on both sides: no pair to test, so not tested and not bold."""
    out = verdicts({"a": {0: 0.1}, "b": {0: 0.2}}, "min", 0.05)
    assert out["a"].best and out["a"].bold
    assert not out["b"].tested and not out["b"].bold
    assert "fewer than 2 seeds" in out["b"].reason


def test_verdicts_no_direction_nothing_bold():
    """better=None (a column without a direction): no best, nothing bold, nothing tested."""
    out = verdicts({"a": {0: 0.1, 1: 0.2}, "b": {0: 0.3, 1: 0.4}}, None, 0.05)
    assert set(out) == {"a", "b"}
    assert not any(v.best or v.bold or v.tested for v in out.values())


def test_verdicts_tie_for_best():
    """Two entries with the same mean share best and bold; a third is tested against them."""
    tied = {0: 0.10, 1: 0.14, 2: 0.12}
    worse = {0: 0.30, 1: 0.33, 2: 0.35}
    out = verdicts({"a": dict(tied), "b": dict(tied), "c": worse}, "min", 0.05)
    assert out["a"].best and out["a"].bold
    assert out["b"].best and out["b"].bold
    assert not out["c"].best and out["c"].tested
    expected = oracle_p([0.10, 0.14, 0.12], [0.30, 0.33, 0.35])  # m = 1
    assert abs(out["c"].p_adjusted - expected) <= 1e-12


def test_verdicts_empty_entry_has_no_values():
    """An entry without a value in this column is neither best nor bold."""
    out = verdicts({"a": {0: 0.1, 1: 0.2}, "empty": {}}, "min", 0.05)
    assert out["a"].best
    assert not out["empty"].bold and not out["empty"].tested
    assert out["empty"].reason == "no values"
