"""Evidence plots, drawn at the end of every training run from its own metric history
(``calibexp.diagrams.log_evidence``); each takes ``{metric key: [(epoch, value), ...]}``.

- ``plot_evidence_components`` (``plots/evidence_components.png``): every ``evidence/<key>`` the
  loss logs per epoch (the sample-weighted epoch mean of its ``components``: for FCL/SA-FCL
  focal, brier, w, w_brier and p_t; for every loss at least p_t), one panel each.
- ``plot_ece_vs_acc`` (``plots/ece_vs_acc.png``): val ECE against val accuracy, one point per
  val-evaluated epoch joined in epoch order (light to dark): a run that gains accuracy while
  its ECE grows drifts up and right.
- ``plot_gate_gradient`` (``plots/gate_gradient.png``, gated losses only): per epoch, on the
  first batch, ‖∂ mean(w)/∂z‖₂ (``evidence/gate_grad_norm``) and the size of the gradient
  that flows through the gate relative to the whole, ‖∂/∂z λ·mean(w·sg[B])‖₂ / ‖∂L/∂z‖₂
  (``evidence/gate_grad_ratio``): both 0 when the gate is detached (SA-FCL), and for SA-FCL
  w/o stop-gradient the size of the force that raises p_t to close the gate.

The SA-FCL repository's README names evidence_components.png, ece_vs_acc.png and gradient-ratio
plots that none of its commits draws; these are calibexp's definitions of them.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

BLUE, VERMILION = "#0072B2", "#D55E00"  # Okabe-Ito, as the other figures
GATE_KEYS = ("evidence/gate_grad_norm", "evidence/gate_grad_ratio")

History = dict[str, list[tuple[int, float]]]


def plot_evidence_components(history: History, title: str) -> Figure:
    keys = [k for k in sorted(history) if k.startswith("evidence/") and k not in GATE_KEYS]
    columns = min(len(keys), 3)
    rows = math.ceil(len(keys) / columns)
    fig = Figure(figsize=(3.4 * columns, 2.7 * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax, key in zip(axes, keys):
        epochs, values = zip(*history[key])
        ax.plot(epochs, values, color=BLUE, marker="o" if len(epochs) < 30 else None)
        ax.set_title(key.removeprefix("evidence/"))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes[len(keys) :]:
        ax.set_visible(False)
    fig.suptitle(f"evidence per epoch (train, sample-weighted means): {title}")
    return fig


def plot_ece_vs_acc(history: History, ece_key: str, title: str) -> Figure:
    accuracy = dict(history["val/acc"])
    points = [(epoch, accuracy[epoch], ece) for epoch, ece in history[ece_key] if epoch in accuracy]
    epochs, acc, ece = (np.array(column) for column in zip(*points))
    fig = Figure(figsize=(5.2, 4.0), layout="constrained")
    ax = fig.subplots()
    ax.plot(acc, ece, color="#cccccc", linewidth=1, zorder=1)
    dots = ax.scatter(acc, ece, c=epochs, cmap="viridis_r", zorder=2)
    fig.colorbar(dots, ax=ax, label="epoch").locator = MaxNLocator(integer=True)
    for index in (0, len(epochs) - 1):
        ax.annotate(f"epoch {epochs[index]}", (acc[index], ece[index]), fontsize="small")
    ax.set_xlabel("val accuracy")
    ax.set_ylabel(f"val {ece_key.removeprefix('val/')}")
    ax.set_title(f"val ECE against accuracy\n{title}", fontsize="medium")
    return fig


def plot_gate_gradient(history: History, title: str) -> Figure:
    fig = Figure(figsize=(9, 3.2), layout="constrained")
    labels = ("‖∂ mean(w)/∂z‖₂ (batch 0)", "‖∂(λ·w·sg[B])/∂z‖ / ‖∂L/∂z‖ (batch 0)")
    for ax, key, label, colour in zip(fig.subplots(1, 2), GATE_KEYS, labels, (BLUE, VERMILION)):
        if key in history:
            epochs, values = zip(*history[key])
            ax.plot(epochs, values, color=colour, marker="o" if len(epochs) < 30 else None)
        ax.set_title(label)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(f"gate gradient: {title}")
    return fig
