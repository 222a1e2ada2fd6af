"""OoD scores and detection metrics: golden values on fixed score arrays with heavy ties (70% of
the MSP at exactly 1.0), against written-out oracles (pairwise Mann-Whitney AUROC, the step-sum
average precision, OpenOOD v1.5's FPR@95 rule) and scikit-learn; every score's orientation
checked on a perfect separator."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from calibexp.metrics.ood import OOD_SCORES, detection_metrics, scores_of


def tied_msp_scores(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """−MSP of 300 ID and 200 OoD samples: 70% of all at exactly −1.0 (MSP = 1), the rest from
    a few distinct levels, so ties also fall between the ID and the OoD samples."""
    rng = np.random.default_rng(seed)
    levels = np.array([-0.99, -0.9, -0.8, -0.7, -0.5])

    def draw(n: int, tail_weights: list[float]) -> np.ndarray:
        out = np.full(n, -1.0)
        tail = rng.random(n) >= 0.7
        out[tail] = rng.choice(levels, size=int(tail.sum()), p=tail_weights)
        return out

    return draw(300, [0.4, 0.3, 0.2, 0.05, 0.05]), draw(200, [0.1, 0.2, 0.2, 0.25, 0.25])


def mann_whitney_auroc(id_scores: np.ndarray, ood_scores: np.ndarray) -> float:
    """P(OoD scores above ID) + ½ P(tie), over every (ID, OoD) pair."""
    above = (ood_scores[:, None] > id_scores[None, :]).sum()
    ties = (ood_scores[:, None] == id_scores[None, :]).sum()
    return (above + 0.5 * ties) / (len(id_scores) * len(ood_scores))


def step_average_precision(positive: np.ndarray, negative: np.ndarray) -> float:
    """Σ_n (R_n − R_{n−1}) P_n over the distinct thresholds, highest first, where a sample is
    called positive when its score is >= the threshold."""
    total, previous_recall = 0.0, 0.0
    for threshold in np.unique(np.concatenate([positive, negative]))[::-1]:
        true_pos = (positive >= threshold).sum()
        false_pos = (negative >= threshold).sum()
        recall = true_pos / len(positive)
        total += (recall - previous_recall) * true_pos / (true_pos + false_pos)
        previous_recall = recall
    return total


def openood_fpr95(id_scores: np.ndarray, ood_scores: np.ndarray) -> float:
    """OpenOOD v1.5: OoD positive; walk the thresholds from the highest score down and take the
    FPR of the first operating point whose TPR reaches 0.95."""
    for threshold in np.unique(np.concatenate([id_scores, ood_scores]))[::-1]:
        tpr = (ood_scores >= threshold).mean()
        if tpr >= 0.95:
            return float((id_scores >= threshold).mean())
    raise AssertionError("unreachable: the lowest threshold flags every sample")


def test_heavy_ties_equal_the_written_out_oracles_and_sklearn():
    id_scores, ood_scores = tied_msp_scores()
    everything = np.concatenate([id_scores, ood_scores])
    assert np.isclose((everything == -1.0).mean(), 0.7, atol=0.05)
    got = detection_metrics(id_scores, ood_scores)
    is_ood = np.r_[np.zeros(300), np.ones(200)]

    assert got["auroc"] == pytest.approx(mann_whitney_auroc(id_scores, ood_scores), abs=1e-9)
    assert got["auroc"] == pytest.approx(roc_auc_score(is_ood, everything), abs=1e-9)
    assert got["aupr_out"] == pytest.approx(step_average_precision(ood_scores, id_scores), abs=1e-9)
    assert got["aupr_out"] == pytest.approx(average_precision_score(is_ood, everything), abs=1e-9)
    assert got["aupr_in"] == pytest.approx(
        step_average_precision(-id_scores, -ood_scores), abs=1e-9
    )
    assert got["aupr_in"] == pytest.approx(
        average_precision_score(1 - is_ood, -everything), abs=1e-9
    )
    assert got["fpr95"] == pytest.approx(openood_fpr95(id_scores, ood_scores), abs=1e-12)
    # ties between the classes are half credit: not the order the samples come in
    reordered = detection_metrics(id_scores[::-1].copy(), ood_scores[::-1].copy())
    assert reordered == got


def test_fpr95_on_a_hand_computed_case():
    # 20 OoD at 1..20, 10 ID at 0.5, 2.5, 4.5, ..., 18.5. TPR >= 0.95 first at threshold 2
    # (19 of 20 OoD flagged), where the ID samples >= 2 are 9 of 10.
    ood = np.arange(1.0, 21.0)
    id_ = np.arange(0.5, 20.0, 2.0)
    assert detection_metrics(id_, ood)["fpr95"] == pytest.approx(0.9)
    # a perfect separator: no ID sample is flagged at TPR 1
    assert detection_metrics(id_ - 100, ood)["fpr95"] == 0.0


def test_fpr95_reads_every_threshold_even_where_the_roc_is_collinear():
    # identical ID and OoD scores in equal steps: every point lies on the diagonal, and
    # roc_curve's default drop_intermediate would keep only (0, 0) and (1, 1), reading 1.0
    scores = np.arange(20.0)
    assert openood_fpr95(scores, scores) == 0.95
    assert detection_metrics(scores, scores)["fpr95"] == 0.95
    assert detection_metrics(scores, scores)["auroc"] == pytest.approx(0.5)


def test_score_values_by_hand():
    z = torch.tensor([[2.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    p0 = math.exp(2) / (math.exp(2) + 2)
    assert OOD_SCORES.build("msp", z).tolist() == pytest.approx([-p0, -1 / 3])
    assert OOD_SCORES.build("max_logit", z).tolist() == pytest.approx([-2.0, -1.0])
    energy = [-math.log(math.exp(2) + 2), -math.log(3 * math.e)]
    assert OOD_SCORES.build("energy", z).tolist() == pytest.approx(energy)
    q = (1 - p0) / 2
    entropy = [-(p0 * math.log(p0) + 2 * q * math.log(q)), math.log(3)]
    assert OOD_SCORES.build("entropy", z).tolist() == pytest.approx(entropy)


@pytest.mark.parametrize("score", OOD_SCORES.names())
def test_every_score_gives_auroc_one_on_a_perfect_separator(score):
    # ID: one confident large logit; OoD: flat, small logits. Every score must put OoD higher.
    generator = torch.Generator().manual_seed(0)
    confident = torch.zeros(50, 10)
    confident[torch.arange(50), torch.randint(0, 10, (50,), generator=generator)] = 12.0
    flat = 0.1 * torch.rand(40, 10, generator=generator)
    scores = scores_of(torch.cat([confident, flat]), [score])[score]
    got = detection_metrics(scores[:50], scores[50:])
    assert got["auroc"] == 1.0 and got["aupr_out"] == 1.0 and got["aupr_in"] == 1.0
    assert got["fpr95"] == 0.0
    # and reversed roles give the worst value, so the orientation is not an accident
    assert detection_metrics(scores[50:], scores[:50])["auroc"] == 0.0
