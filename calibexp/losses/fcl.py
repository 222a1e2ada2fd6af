"""Focal calibration loss (FCL) and its self-adaptive, gated variant (SA-FCL)."""

from __future__ import annotations

import torch

from calibexp.errors import require
from calibexp.losses import terms
from calibexp.losses.base import CalibrationLoss
from calibexp.losses.registry import LOSSES


class FocalCalibration(CalibrationLoss):
    r"""L = (1/N) Σ_i [ −(1 − p_t,i)^{γ_f} log p_t,i + λ · w_i · ‖p_i − e_{y_i}‖²₂ ].

    - ``fcl_ungated`` (FCL; Liang et al., "Calibrating Deep Neural Network using Euclidean
      Distance", arXiv 2410.18321, as implemented in the authors' repository): w ≡ 1.
    - ``safcl`` (SA-FCL, the same group's repository; no paper): w = sg[(1 − p_t)^{γ_c}], a
      stop-gradient importance weight that puts the Brier term on hard samples.
    - ``safcl_nodetach`` (the "w/o stop-grad" ablation): w = (1 − p_t)^{γ_c}, not detached, so
      the calibration term gains λ·B·∂w/∂z, a force that raises p_t whether or not the sample
      is calibrated: the gate closes itself instead of weighting the hard samples.
    """

    def __init__(
        self, gamma_focal: float, lam: float, gamma_cal: float | None, detach: bool
    ) -> None:
        super().__init__()
        self.gamma_focal = gamma_focal
        self.lam = lam
        self.gamma_cal = gamma_cal  # None: ungated
        self.detach = detach

    def gate(self, log_p: torch.Tensor) -> torch.Tensor:
        if self.gamma_cal is None:
            return torch.ones_like(log_p)
        w = terms.one_minus(log_p).pow(self.gamma_cal)
        return w.detach() if self.detach else w

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        log_p = terms.log_pt(logits, targets)
        calibration = self.gate(log_p) * terms.brier(logits, targets)
        return (terms.focal(log_p, self.gamma_focal) + self.lam * calibration).mean()

    def components(self, logits: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        log_p = terms.log_pt(logits, targets)
        brier, w = terms.brier(logits, targets), self.gate(log_p)
        return {
            "p_t": log_p.exp(),
            "focal": terms.focal(log_p, self.gamma_focal),
            "brier": brier,
            "w": w,
            "w_brier": w * brier,
        }

    def diagnostics(self, logits: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """On this batch: ``gate_grad_norm`` = ‖∂ mean(w)/∂z‖₂, and ``gate_grad_ratio`` =
        ‖∂/∂z λ·mean(w·sg[B])‖₂ / ‖∂L/∂z‖₂, the size of the gradient that flows through the
        gate itself relative to the loss's whole gradient (B the Brier term, sg stop-gradient; a
        ratio of norms, above 1 when the terms pull apart). Both are 0 by construction when w is
        detached."""
        if self.gamma_cal is None:
            return {}
        with torch.enable_grad():
            z = logits.detach().requires_grad_(True)
            log_p = terms.log_pt(z, targets)
            w = self.gate(log_p)
            if not w.requires_grad:
                zero = torch.zeros((), device=logits.device)
                return {"gate_grad_norm": zero, "gate_grad_ratio": zero}
            brier = terms.brier(z, targets).detach()
            (gate_grad,) = torch.autograd.grad(w.mean(), z, retain_graph=True)
            (through_gate,) = torch.autograd.grad(self.lam * (w * brier).mean(), z)
            (loss_grad,) = torch.autograd.grad(self.forward(z, targets), z)
        return {
            "gate_grad_norm": gate_grad.norm(),
            "gate_grad_ratio": through_gate.norm() / loss_grad.norm().clamp_min(1e-30),
        }


def _check(gamma_focal: float, lam: float, gamma_cal: float | None = None) -> None:
    require(gamma_focal >= 0, "loss.gamma_focal", gamma_focal, ">= 0")
    require(lam >= 0, "loss.lam", lam, ">= 0")
    if gamma_cal is not None:
        require(gamma_cal >= 0, "loss.gamma_cal", gamma_cal, ">= 0")


@LOSSES.register("fcl_ungated")
def fcl_ungated(*, gamma_focal: float = 2.0, lam: float = 1.0) -> FocalCalibration:
    _check(gamma_focal, lam)
    return FocalCalibration(gamma_focal, lam, gamma_cal=None, detach=True)


@LOSSES.register("safcl")
def safcl(
    *, gamma_focal: float = 2.0, gamma_cal: float = 2.0, lam: float = 1.0
) -> FocalCalibration:
    _check(gamma_focal, lam, gamma_cal)
    return FocalCalibration(gamma_focal, lam, gamma_cal, detach=True)


@LOSSES.register("safcl_nodetach")
def safcl_nodetach(
    *, gamma_focal: float = 2.0, gamma_cal: float = 2.0, lam: float = 1.0
) -> FocalCalibration:
    _check(gamma_focal, lam, gamma_cal)
    return FocalCalibration(gamma_focal, lam, gamma_cal, detach=False)
