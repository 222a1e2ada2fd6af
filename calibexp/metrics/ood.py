"""Out-of-distribution detection: scores of a sample's logits, and how well they separate
in-distribution (ID) samples from out-of-distribution (OoD) ones.

Every score is oriented **higher = more OoD** (TorchUncertainty's convention), so one set of
metrics serves all of them, with OoD as the positive class (OpenOOD v1.5,
``openood/evaluators/metrics.py``).

The detection metrics are scikit-learn's, which are tie-safe: ``roc_curve`` merges tied scores
into one threshold and the AUROC gives a tie between an ID and an OoD sample half credit. (The
SA-FCL repository's hand-rolled AUROC is not: with 70% of the MSP at exactly 1.0 it gave 0.6820,
or 0.6679 with the samples reversed, where the tie-safe value is 0.6987.)
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from calibexp.registry import Registry

OOD_SCORES = Registry("OoD score")

DETECTION_METRICS = ("auroc", "aupr_in", "aupr_out", "fpr95")
TPR_LEVEL = 0.95  # the recall of OoD samples at which fpr95 is read


@OOD_SCORES.register("msp")
def msp(logits: torch.Tensor) -> torch.Tensor:
    """−max_k softmax(z)_k: the negated maximum softmax probability (Hendrycks & Gimpel, "A
    Baseline for Detecting Misclassified and Out-of-Distribution Examples", ICLR 2017)."""
    return -torch.softmax(logits.float(), dim=1).amax(dim=1)


@OOD_SCORES.register("max_logit")
def max_logit(logits: torch.Tensor) -> torch.Tensor:
    """−max_k z_k: the negated largest logit (Hendrycks et al., "Scaling Out-of-Distribution
    Detection for Real-World Settings", ICML 2022). Unchanged in order by a temperature."""
    return -logits.float().amax(dim=1)


@OOD_SCORES.register("energy")
def energy(logits: torch.Tensor) -> torch.Tensor:
    """E(z) = −log Σ_k exp(z_k): the free energy at temperature 1 (Liu et al., "Energy-based
    Out-of-distribution Detection", NeurIPS 2020)."""
    return -torch.logsumexp(logits.float(), dim=1)


@OOD_SCORES.register("entropy")
def entropy(logits: torch.Tensor) -> torch.Tensor:
    """H(p) = −Σ_k p_k log p_k of p = softmax(z), in nats: the predictive entropy (the score of
    torrvision/focal_calibration's ``Metrics/ood_test_utils.py``)."""
    log_p = torch.log_softmax(logits.float(), dim=1)
    return -(log_p.exp() * log_p).sum(dim=1)


def detection_metrics(id_scores: np.ndarray, ood_scores: np.ndarray) -> dict[str, float]:
    """How well ``scores`` (higher = more OoD) put the OoD samples above the ID ones.

    - ``auroc``: the area under the ROC curve, OoD positive (``roc_auc_score``): the chance a
      random OoD sample scores above a random ID sample, a tie counting one half.
    - ``aupr_out``: average precision with OoD positive on the score; ``aupr_in``: with ID
      positive on the negated score (a confidence). ``average_precision_score`` is the step
      sum Σ (R_n − R_{n−1}) P_n, not the trapezoid, which is optimistic.
    - ``fpr95``: the share of ID samples flagged OoD at the first ROC point, in order of
      decreasing threshold, whose TPR (share of OoD samples flagged) is ≥ 0.95: OpenOOD v1.5's
      rule, ``fpr[argmax(tpr >= 0.95)]``, on every threshold's point. (OpenOOD calls
      ``roc_curve`` with its default ``drop_intermediate=True``, which drops collinear points:
      where ID and OoD scores tie in equal steps across the 0.95 crossing it then reads a later
      point and a larger FPR, 1.0 instead of 0.95 for identical ID and OoD scores.)
    """
    scores = np.concatenate([id_scores, ood_scores]).astype(np.float64)
    is_ood = np.concatenate([np.zeros(len(id_scores)), np.ones(len(ood_scores))])
    fpr, tpr, _ = roc_curve(is_ood, scores, drop_intermediate=False)
    return {
        "auroc": float(roc_auc_score(is_ood, scores)),
        "aupr_in": float(average_precision_score(1 - is_ood, -scores)),
        "aupr_out": float(average_precision_score(is_ood, scores)),
        "fpr95": float(fpr[np.argmax(tpr >= TPR_LEVEL)]),
    }


def scores_of(logits: torch.Tensor, names: list[str] | tuple[str, ...]) -> dict[str, np.ndarray]:
    """Each named score of ``logits``, as float64 NumPy arrays on the host."""
    return {name: OOD_SCORES.build(name, logits).double().cpu().numpy() for name in names}
