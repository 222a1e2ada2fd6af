"""Every registered loss against an independent float64 implementation of its formula, written
here sample by sample (value and gradient, rtol 1e-6), plus gradcheck and the behaviours the
papers rely on. A newly registered loss fails here until its reference is added below."""

from __future__ import annotations

import math

import pytest
import torch

from calibexp.config import load_config
from calibexp.errors import CalibexpError
from calibexp.losses import LOSSES
from calibexp.losses.focal import next_below
from calibexp.meta.dece import dece
from calibexp.metrics import Predictions
from calibexp.metrics.calibration import ece
from tests.support import ROOT

F64 = torch.float64  # every tensor here is float64: the references are the precise side


# ----------------------------------------------------------------------------- references


def softmax(z):
    e = torch.exp(z - z.max())
    return e / e.sum()


def per_sample(fn):
    """Mean over the batch of fn(p_i, y_i, z_i), one sample at a time."""

    def loss(z, y):
        return torch.stack([fn(softmax(z[i]), int(y[i]), z[i]) for i in range(len(y))]).mean()

    return loss


def focal_of(p, y, gamma):
    return -((1 - p[y]) ** gamma) * torch.log(p[y])


def brier_of(p, y):
    return sum((p[k] - (1.0 if k == y else 0.0)) ** 2 for k in range(len(p)))


def ref_label_smoothing(eps, spread):
    def fn(p, y, z):
        k = len(p)
        q = [
            (1 - eps + eps / k if j == y else eps / k)
            if spread == "all"
            else (1 - eps if j == y else eps / (k - 1))
            for j in range(k)
        ]
        return -sum(q[j] * torch.log(p[j]) for j in range(k))

    return per_sample(fn)


def ref_flsd(thresholds, gammas):
    def fn(p, y, z):
        pt = float(p[y].detach())
        gamma = gammas[sum(pt >= t for t in thresholds)]
        return focal_of(p, y, gamma)

    return per_sample(fn)


def ref_dual_focal(gamma):
    def fn(p, y, z):
        below = [p[k] for k in range(len(p)) if p[k] < p[y]]
        p_j = max(below, key=lambda t: float(t.detach())) if below else torch.zeros((), dtype=F64)
        return -((1 - p[y] + p_j) ** gamma) * torch.log(p[y])

    return per_sample(fn)


def ref_fcl(gamma_focal, lam, gamma_cal, detach):
    def fn(p, y, z):
        if gamma_cal is None:
            w = 1.0
        else:
            w = (1 - p[y]) ** gamma_cal
            w = w.detach() if detach else w
        return focal_of(p, y, gamma_focal) + lam * w * brier_of(p, y)

    return per_sample(fn)


def ref_mmce_w(z, y, width=0.4, pair_mean=False):
    probs = [softmax(z[i]) for i in range(len(y))]
    r = [max(p, key=lambda t: float(t.detach())) for p in probs]
    correct = [int(torch.argmax(p)) == int(t) for p, t in zip(probs, y)]
    C = [i for i in range(len(y)) if correct[i]]
    W = [i for i in range(len(y)) if not correct[i]]
    if not C or not W:
        return torch.zeros((), dtype=F64)
    m, n = len(C), len(W)
    dm, dn = (m**2, n**2) if pair_mean else (1, 1)

    def k(i, j):
        return torch.exp(-torch.abs(r[i] - r[j]) / width)

    cc = sum((1 - r[i]) * (1 - r[j]) * k(i, j) for i in C for j in C) / (m**2 * dm)
    ww = sum(r[i] * r[j] * k(i, j) for i in W for j in W) / (n**2 * dn)
    cw = sum((1 - r[i]) * r[j] * k(i, j) for i in C for j in W) / (m * n * math.sqrt(dm * dn))
    return torch.sqrt(cc + ww - 2 * cw + 1e-10)


def ref_mmce(lam, pair_mean=False):
    def loss(z, y):
        ce = per_sample(lambda p, t, _: -torch.log(p[t]))(z, y)
        return ce + lam * ref_mmce_w(z, y, pair_mean=pair_mean)

    return loss


def ref_dece_value(z, y, bins=15, t_a=100.0, t_b=0.01):
    n = len(y)
    probs = [softmax(z[i]) for i in range(n)]
    conf = [max(p, key=lambda t: float(t.detach())) for p in probs]
    eps = 1e-6
    memberships = []
    for c in conf:
        h = torch.stack(
            [((m + 1) * c - sum(j / bins for j in range(m + 1))) / t_b for m in range(bins)]
        )
        memberships.append((softmax(h) + eps) / (1 + (bins + 1) * eps))
    accs = []
    for p, t in zip(probs, y):
        rank = 1 + sum(
            torch.sigmoid(t_a * (p[k] - p[int(t)])) for k in range(len(p)) if k != int(t)
        )
        accs.append(torch.clamp(2 - rank, min=0))
    total = torch.zeros((), dtype=F64)
    for m in range(bins):
        mass = sum(o[m] for o in memberships)
        bin_acc = sum(o[m] * a for o, a in zip(memberships, accs)) / mass
        bin_conf = sum(o[m] * c for o, c in zip(memberships, conf)) / mass
        total = total + mass / n * torch.abs(bin_acc - bin_conf)
    return total


def ref_dece(beta):
    def loss(z, y):
        return per_sample(lambda p, t, _: -torch.log(p[t]))(z, y) + beta * ref_dece_value(z, y)

    return loss


# (registered name, builder params, reference)
CASES = [
    ("ce", {}, per_sample(lambda p, y, z: -torch.log(p[y]))),
    ("label_smoothing", {}, ref_label_smoothing(0.05, "all")),
    ("label_smoothing", {"smoothing": 0.2, "spread": "others"}, ref_label_smoothing(0.2, "others")),
    ("brier", {}, per_sample(lambda p, y, z: brier_of(p, y))),
    ("mmce", {}, ref_mmce(2.0, pair_mean=True)),  # the default: torrvision's scale
    ("mmce", {"pair_reduction": "sum"}, ref_mmce(2.0)),
    ("mmce", {"lam": 0.5, "pair_reduction": "mean"}, ref_mmce(0.5, pair_mean=True)),
    ("focal", {}, per_sample(lambda p, y, z: focal_of(p, y, 3.0))),
    ("focal", {"gamma": 0.5}, per_sample(lambda p, y, z: focal_of(p, y, 0.5))),
    ("flsd53", {}, ref_flsd([0.2, 0.5], [5.0, 3.0, 3.0])),
    ("flsd53", {"gammas": [5.0, 3.0, 2.0]}, ref_flsd([0.2, 0.5], [5.0, 3.0, 2.0])),
    ("dual_focal", {}, ref_dual_focal(5.0)),
    ("dual_focal", {"gamma": 2.6}, ref_dual_focal(2.6)),
    ("fcl_ungated", {}, ref_fcl(2.0, 1.0, None, True)),
    ("safcl", {}, ref_fcl(2.0, 1.0, 2.0, True)),
    ("safcl", {"gamma_focal": 1.0, "gamma_cal": 3.0, "lam": 0.3}, ref_fcl(1.0, 0.3, 3.0, True)),
    ("safcl_nodetach", {}, ref_fcl(2.0, 1.0, 2.0, False)),
    ("dece", {}, ref_dece(0.5)),
]


def test_every_registered_loss_has_a_reference():
    assert {name for name, _, _ in CASES} == set(LOSSES.names())


def batch(k: int, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random logits, plus one sample with p_t near 1 and one with p_t near 0."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, k, generator=gen, dtype=F64) * 3
    y = torch.randint(0, k, (n,), generator=gen)
    z[0, y[0]] += 25.0  # p_t ≈ 1 - K·e^-25
    z[1, y[1]] -= 25.0  # p_t ≈ e^-25
    return z, y


@pytest.mark.parametrize("k, n", [(2, 5), (10, 16), (100, 7)])
@pytest.mark.parametrize(
    "name, params, reference", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)]
)
def test_value_and_gradient_match_the_formula(name, params, reference, k, n):
    z, y = batch(k, n, seed=k * 1000 + n)
    z1 = z.clone().requires_grad_(True)
    z2 = z.clone().requires_grad_(True)
    got = LOSSES.build(name, **params)(z1, y)
    want = reference(z2, y)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-12)
    got.backward()
    want.backward()
    torch.testing.assert_close(z1.grad, z2.grad, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("name, params", [(c[0], c[1]) for c in CASES])
def test_gradcheck(name, params):
    z, y = batch(4, 6, seed=7)
    loss = LOSSES.build(name, **params)
    if name == "safcl":
        # A stop-gradient makes the gradient differ from the value's finite differences on
        # purpose: it is the derivative of the loss with the gate w held at its value here.
        w_here = loss.gate(torch.log_softmax(z, 1).gather(1, y[:, None]).squeeze(1))
        loss.gate = lambda log_p: w_here
    assert torch.autograd.gradcheck(lambda logits: loss(logits, y), (z.requires_grad_(True),))


# ----------------------------------------------------------------------------- behaviours


def test_safcl_and_nodetach_differ_by_the_gate_gradient_term():
    z, y = batch(10, 32, seed=3)
    lam, gamma_cal = 0.7, 2.0
    a = z.clone().requires_grad_(True)
    b = z.clone().requires_grad_(True)
    va = LOSSES.build("safcl", lam=lam, gamma_cal=gamma_cal)(a, y)
    vb = LOSSES.build("safcl_nodetach", lam=lam, gamma_cal=gamma_cal)(b, y)
    assert va.item() == vb.item()
    va.backward()
    vb.backward()
    assert not torch.allclose(a.grad, b.grad)
    # λ·B_i·∂w_i/∂z_ik / N, w = (1 − p_t)^γc: ∂w/∂z_k = −γc (1 − p_t)^(γc − 1) p_t (δ_ky − p_k)
    p = torch.softmax(z, 1)
    pt = p.gather(1, y[:, None]).squeeze(1)
    onehot = torch.nn.functional.one_hot(y, 10).double()
    brier = ((p - onehot) ** 2).sum(1)
    dw_dz = (-gamma_cal * (1 - pt) ** (gamma_cal - 1) * pt)[:, None] * (onehot - p)
    extra = lam * brier[:, None] * dw_dz / len(y)
    torch.testing.assert_close(b.grad - a.grad, extra, rtol=1e-6, atol=1e-12)


def test_gate_gradient_norm_is_zero_only_with_stop_gradient():
    z, y = batch(10, 32, seed=4)
    assert LOSSES.build("safcl").diagnostics(z, y)["gate_grad_norm"].item() == 0.0
    norm = LOSSES.build("safcl_nodetach").diagnostics(z, y)["gate_grad_norm"]
    zz = z.clone().requires_grad_(True)
    pt = torch.softmax(zz, 1).gather(1, y[:, None]).squeeze(1)
    ((1 - pt) ** 2).mean().backward()
    assert norm.item() == pytest.approx(zz.grad.norm().item(), rel=1e-9) and norm.item() > 0


def test_gate_gradient_ratio_is_the_share_of_the_gradient_through_the_gate():
    z, y = batch(10, 32, seed=5)
    kwargs = {"lam": 0.7, "gamma_cal": 2.0}
    assert LOSSES.build("safcl", **kwargs).diagnostics(z, y)["gate_grad_ratio"].item() == 0.0
    ratio = LOSSES.build("safcl_nodetach", **kwargs).diagnostics(z, y)["gate_grad_ratio"]
    # the gradient through the gate is what the no-detach variant adds to SA-FCL's gradient
    a, b = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    LOSSES.build("safcl", **kwargs)(a, y).backward()
    LOSSES.build("safcl_nodetach", **kwargs)(b, y).backward()
    expected = ((b.grad - a.grad).norm() / b.grad.norm()).item()
    assert ratio.item() == pytest.approx(expected, rel=1e-9) and 0 < expected < 1
    assert "gate_grad_ratio" not in LOSSES.build("fcl_ungated").diagnostics(z, y)


def test_flsd53_switches_gamma_exactly_at_the_thresholds():
    loss = LOSSES.build("flsd53")
    pt = torch.tensor([0.05, 0.2 - 1e-12, 0.2, 0.2 + 1e-12, 0.5 - 1e-12, 0.5, 0.99], dtype=F64)
    assert loss.sample_gamma(pt.log()).tolist() == [5, 5, 3, 3, 3, 3, 3]
    loss532 = LOSSES.build("flsd53", gammas=[5.0, 3.0, 2.0])
    assert loss532.sample_gamma(pt.log()).tolist() == [5, 5, 3, 3, 3, 2, 2]
    # in the loss: a sample just below 0.2 gets γ = 5, just above gets γ = 3
    for target_pt, gamma in ((0.19, 5), (0.21, 3), (0.6, 3)):
        z = torch.tensor([[math.log(target_pt), math.log(1 - target_pt)]], dtype=F64)
        y = torch.tensor([0])
        expected = -((1 - target_pt) ** gamma) * math.log(target_pt)
        assert loss(z, y).item() == pytest.approx(expected, rel=1e-9)


def test_dual_focal_picks_the_next_probability_below_the_true_class():
    probs = torch.tensor(
        [
            [0.50, 0.30, 0.15, 0.05],  # y = 0 is the arg-max: p_j = 0.30, the runner-up
            [0.50, 0.30, 0.15, 0.05],  # y = 2 is not: p_j = 0.05, not the top competitor 0.50
            [0.50, 0.30, 0.15, 0.05],  # y = 3 is the smallest: p_j = 0
            [0.40, 0.40, 0.15, 0.05],  # a tie with p_y is not "strictly below": p_j = 0.15
        ],
        dtype=F64,
    )
    y = torch.tensor([0, 2, 3, 1])
    assert next_below(probs, y).tolist() == [0.30, 0.05, 0.0, 0.15]
    loss = LOSSES.build("dual_focal", gamma=2.0)
    expected = torch.stack(
        [
            -((1 - probs[i, y[i]] + pj) ** 2) * probs[i, y[i]].log()
            for i, pj in enumerate([0.30, 0.05, 0.0, 0.15])
        ]
    ).mean()
    torch.testing.assert_close(loss(probs.log(), y), expected)


@pytest.mark.parametrize("all_correct", [True, False])
def test_mmce_is_zero_for_all_correct_or_all_wrong_batches(all_correct):
    z, _ = batch(10, 16, seed=5)
    pred = z.argmax(1)
    y = pred if all_correct else (pred + 1) % 10
    loss = LOSSES.build("mmce")
    assert loss.mmce(z, y).item() == 0.0
    assert loss(z, y).item() == pytest.approx(torch.nn.functional.cross_entropy(z, y).item())


def test_dece_tends_to_the_hard_ece():
    gen = torch.Generator().manual_seed(11)
    z = torch.randn(400, 10, generator=gen, dtype=F64) * 2
    y = torch.randint(0, 10, (400,), generator=gen)
    conf = torch.softmax(z, 1).max(1).values
    # keep confidences away from bin edges and the top two classes apart (no near-ties)
    top2 = torch.softmax(z, 1).topk(2).values
    keep = ((conf * 15 - (conf * 15).round()).abs() > 1e-3) & (top2[:, 0] - top2[:, 1] > 1e-3)
    z, y = z[keep], y[keep]
    hard = ece(Predictions(z, y), bins=15).double()
    assert dece(z, y, t_a=1e2, t_b=1e-2).item() != pytest.approx(hard.item(), abs=1e-4)
    assert dece(z, y, t_a=1e6, t_b=1e-6).item() == pytest.approx(hard.item(), abs=1e-4)


@pytest.mark.parametrize(
    "override, message",
    [
        ("loss.gamma=-1", "config key 'loss.gamma': got -1.0, expected >= 0"),
        ("loss.lam=-0.5", "config key 'loss.lam': got -0.5, expected >= 0"),
        ("loss.smoothing=1.0", "config key 'loss.smoothing': got 1.0, expected a value in [0, 1)"),
        (
            "loss.smoothing=-0.1",
            "config key 'loss.smoothing': got -0.1, expected a value in [0, 1)",
        ),
        ("loss.gammas=[5,3]", "expected 3 values, one more than loss.thresholds"),
        ("loss.name=focl", "unknown loss 'focl' (did you mean 'focal'?); known: brier, ce, dece"),
    ],
)
def test_out_of_range_hyperparameters_fail_at_config_time(override, message):
    base = {
        "loss.gamma": "focal",
        "loss.lam": "safcl",
        "loss.smoothing": "label_smoothing",
        "loss.gammas": "flsd53",
        "loss.name": "ce",
    }[override.split("=")[0]]
    with pytest.raises(CalibexpError) as err:
        load_config(ROOT / "configs/demo.yaml", [f"loss.name={base}", override])
    assert message in str(err.value)
