"""The evidence plots draw exactly the history they are given: one panel per evidence key (the
gate diagnostics on their own figure), the ECE-against-accuracy points in epoch order."""

from __future__ import annotations

import numpy as np

from calibexp.plots.evidence import plot_ece_vs_acc, plot_evidence_components, plot_gate_gradient

HISTORY = {
    "evidence/p_t": [(0, 0.3), (1, 0.7), (2, 0.8)],
    "evidence/w": [(0, 0.5), (1, 0.2), (2, 0.1)],
    "evidence/gate_grad_norm": [(0, 0.02), (1, 0.01), (2, 0.0)],
    "evidence/gate_grad_ratio": [(0, 0.2), (1, 0.1), (2, 0.05)],
    "val/acc": [(0, 0.5), (2, 0.9)],  # val evaluated at epochs 0 and 2 only
    "val/ece_15": [(0, 0.3), (2, 0.05)],
}


def visible_axes(fig):
    return [ax for ax in fig.axes if ax.get_visible()]


def test_components_one_panel_per_evidence_key_without_the_gate_diagnostics():
    fig = plot_evidence_components(HISTORY, "a run")
    axes = [ax for ax in visible_axes(fig) if ax.get_title()]
    assert sorted(ax.get_title() for ax in axes) == ["p_t", "w"]
    by_title = {ax.get_title(): ax.lines[0] for ax in axes}
    assert list(by_title["p_t"].get_xdata()) == [0, 1, 2]
    assert list(by_title["w"].get_ydata()) == [0.5, 0.2, 0.1]


def test_ece_vs_acc_points_are_the_val_epochs_in_order():
    fig = plot_ece_vs_acc(HISTORY, "val/ece_15", "a run")
    path = fig.axes[0].lines[0]
    assert list(path.get_xdata()) == [0.5, 0.9] and list(path.get_ydata()) == [0.3, 0.05]
    dots = fig.axes[0].collections[0]
    assert np.array_equal(dots.get_offsets(), [[0.5, 0.3], [0.9, 0.05]])
    assert list(dots.get_array()) == [0, 2]  # coloured by epoch


def test_gate_gradient_draws_both_diagnostics():
    fig = plot_gate_gradient(HISTORY, "a run")
    norm, ratio = fig.axes[:2]
    assert list(norm.lines[0].get_ydata()) == [0.02, 0.01, 0.0]
    assert list(ratio.lines[0].get_ydata()) == [0.2, 0.1, 0.05]
