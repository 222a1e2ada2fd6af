"""The references' training protocols, each named by one config key: ``protocol: torrvision``.

A protocol is the set of settings in which a reference's training differs from calibexp's own
defaults (``calibexp``): how the loss is reduced over the batch, clipping, the optimiser, when
the LR schedule steps, which checkpoint is evaluated on test, which calibrator heads the table,
and which samples are held out. Naming one merges its settings where it is named: in a config
file, between that file's ``_base_`` files and its own keys; as an override
(``protocol=torrvision``), on top of every file and below the overrides after it. So whatever
is written after the protocol wins, and every value a run trained with is in its params.
Every protocol sets every key any protocol governs (``GOVERNED``), so naming one protocol after
another leaves nothing of the first; ``calibexp`` sets them to calibexp's own defaults and
leaves the optimiser as the config has it.

- ``torrvision``: Mukhoti et al., "Calibrating Deep Neural Networks using Focal Loss", NeurIPS
  2020 (torrvision/focal_calibration ``train.py``, ``train_utils.py``), and Dual Focal Loss (Tao
  et al., ICML 2023, the same training code): losses summed over the batch
  (``loss_mean=False``; Brier stays a batch mean, MMCE is B·(CE + λ·MMCE)), the gradient's
  global norm clipped at 2, SGD lr 0.1, momentum 0.9 without Nesterov, weight decay 5e-4, the
  scheduler stepped at the start of each epoch (each LR drop one epoch earlier: 149 and 249 on
  the 350-epoch schedule), the last weights on test, T by the grid on val ECE as the "(T)".
- ``metacal``: Bohdal, Yang, Hospedales, "Meta-Calibration", TMLR 2023
  (ondrejbohdal/meta-calibration): torrvision's optimisation, the best-val-accuracy weights on
  test, and meta-val, as large as val, held out of train (its three-way split).
- ``safcl``: the SA-FCL repository (EagleAdelaide/Focal-Calibration-Loss-FCL): mean-reduced
  losses, no clipping, Nesterov momentum as its configs set it, label smoothing with ε/(K − 1)
  on the other classes; the last weights on test (the repository picks ``best.pt`` by *test*
  ECE, a selection on test not repeated here).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from calibexp.errors import CalibexpError

# The reference optimiser of torrvision and meta-calibration (``optim.SGD(..., nesterov=False)``).
SGD_NO_NESTEROV = {
    "name": "sgd",
    "lr": 0.1,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "nesterov": False,
}
# torrvision's training step: loss_mean=False and clip_grad_norm(model.parameters(), 2), with
# scheduler.step() before each epoch.
SUMMED_AND_CLIPPED = {"loss_reduction": "sum", "grad_clip": 2.0, "lr_step": "epoch_start"}
# calibexp's own training step: the batch-mean loss, no clipping, the schedule stepped after each
# epoch (TrainConfig's defaults).
MEAN_UNCLIPPED = {"loss_reduction": "mean", "grad_clip": None, "lr_step": "epoch_end"}
# Model selection and post-hoc calibration as calibexp does them by default (EvalConfig's):
# best.pt by val NLL, the last weights on test, T by val NLL first and torrvision's grid second.
OWN_EVAL = {
    "best_metric": "val/nll",
    "best_mode": "min",
    "test_checkpoint": "last",
    "calibrators": ["temperature", "temperature_grid_ece"],
}
# torrvision's evaluation: the final (350-epoch) weights, T by its grid on val ECE as the "(T)"
# column, so the grid heads the headline; best.pt is its best val accuracy.
TORRVISION_EVAL = {
    "best_metric": "val/acc",
    "best_mode": "max",
    "test_checkpoint": "last",
    "calibrators": ["temperature_grid_ece", "temperature"],
}


@dataclass(frozen=True)
class Protocol:
    reference: str  # what it reproduces, in a few words
    settings: dict[str, Any] = field(default_factory=dict)  # nested config values
    # Settings for one loss, applied when the config holds that loss where the protocol is named.
    loss_settings: dict[str, dict[str, Any]] = field(default_factory=dict)


PROTOCOLS: dict[str, Protocol] = {
    "calibexp": Protocol(
        "calibexp's own defaults: mean-reduced losses, no clipping",
        {"train": MEAN_UNCLIPPED, "eval": OWN_EVAL, "data": {"meta_val_size": 0}},
    ),
    "torrvision": Protocol(
        "torrvision/focal_calibration (Mukhoti et al. 2020) and Dual Focal Loss",
        {
            "train": SUMMED_AND_CLIPPED,
            "optim": SGD_NO_NESTEROV,
            "eval": TORRVISION_EVAL,
            "data": {"meta_val_size": 0},
        },
    ),
    "metacal": Protocol(
        "ondrejbohdal/meta-calibration (Bohdal et al. 2023)",
        {
            "train": SUMMED_AND_CLIPPED,
            "optim": SGD_NO_NESTEROV,
            "eval": {**TORRVISION_EVAL, "test_checkpoint": "best"},
            "data": {"meta_val_size": "${data.val_size}"},
        },
    ),
    "safcl": Protocol(
        "EagleAdelaide/Focal-Calibration-Loss-FCL (SA-FCL)",
        {
            "train": MEAN_UNCLIPPED,
            "optim": {**SGD_NO_NESTEROV, "nesterov": True},
            "eval": OWN_EVAL,
            "data": {"meta_val_size": 0},
        },
        {"label_smoothing": {"spread": "others"}},
    ),
}
DEFAULT_PROTOCOL = "calibexp"
# The sections and keys the protocols set: every protocol sets all of them (but ``calibexp``
# the optimiser), tested in tests/config/test_protocols.py.
GOVERNED: dict[str, tuple[str, ...]] = {
    "train": tuple(MEAN_UNCLIPPED),
    "optim": tuple(SGD_NO_NESTEROV),
    "eval": tuple(OWN_EVAL),
    "data": ("meta_val_size",),
}


def protocol_settings(name: Any, loss_name: Any) -> dict[str, Any]:
    """The nested settings protocol ``name`` merges, for a config whose loss is ``loss_name``;
    an unknown name is refused naming the protocols there are."""
    if name not in PROTOCOLS:
        raise CalibexpError(
            f"config key 'protocol': got {name!r}, expected one of {' | '.join(PROTOCOLS)}"
        )
    protocol = PROTOCOLS[name]
    settings = {"protocol": name, **protocol.settings}
    if loss_name in protocol.loss_settings:
        settings["loss"] = protocol.loss_settings[loss_name]
    return settings
