"""``train.compile`` and ``optim.fused``: the same training, faster, and nothing else changed
(not the run key, not what is logged, the numbers within rounding)."""

from __future__ import annotations

import contextlib
import copy

import pytest
import torch
from mlflow.tracking import MlflowClient
from torch._dynamo.utils import counters

from calibexp.config import load_config, run_key
from calibexp.engine import PlainStep, train_one_epoch
from calibexp.errors import CalibexpError
from calibexp.execution import Compiler, compiler_for, eager
from calibexp.execution.compiling import RECOMPILE_LIMIT
from calibexp.losses import LOSSES
from calibexp.parts import build_parts
from calibexp.run import run_experiment
from calibexp.tracking.registry import KEY_TAG
from calibexp.training import BestSoFar, restore, training_state
from tests.support import FAST, ROOT


def test_auto_mode_is_cuda_graphs_on_cuda_and_default_elsewhere():
    assert compiler_for(False, "auto", torch.device("cuda")) is eager
    assert compiler_for(True, "auto", torch.device("cuda")).mode == "reduce-overhead"
    assert compiler_for(True, "auto", torch.device("cuda")).cuda_graphs
    assert compiler_for(True, "auto", torch.device("cpu")) == Compiler("default")
    assert compiler_for(True, "max-autotune", torch.device("cpu")).mode == "max-autotune"
    # max-autotune records CUDA graphs too, so its steps are marked as reduce-overhead's are
    assert compiler_for(True, "max-autotune", torch.device("cuda")).cuda_graphs
    assert not compiler_for(True, "max-autotune-no-cudagraphs", torch.device("cuda")).cuda_graphs
    assert not Compiler("reduce-overhead", "aot_eager").cuda_graphs
    assert eager(len) is len  # eager compiles nothing


def test_speed_keys_are_not_part_of_the_run_key_and_are_refused_where_they_cannot_work():
    plain = load_config(ROOT / "configs/demo.yaml")
    fast = load_config(ROOT / "configs/demo.yaml", ["train.compile=true", "optim.fused=true"])
    assert run_key(plain) == run_key(fast)
    with pytest.raises(CalibexpError, match=r"'train.compile'.*meta.enabled") as err:
        load_config(
            [ROOT / "configs/demo.yaml", ROOT / "configs/_base_/losses/meta_calibration.yaml"],
            ["train.compile=true"],
        )
    assert "\n" not in str(err.value)
    with pytest.raises(CalibexpError, match=r"'train.check_syncs'.*train.compile=true"):
        load_config(ROOT / "configs/demo.yaml", ["train.compile=true", "train.check_syncs=true"])
    with pytest.raises(CalibexpError, match=r"train.compile_mode.*reduce-overhead"):
        load_config(ROOT / "configs/demo.yaml", ["train.compile_mode=fastest"])


def test_fused_sgd_is_the_same_update():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    twin = copy.deepcopy(model)
    parts = build_parts(load_config(ROOT / "configs/demo.yaml", [*FAST, "optim.fused=true"]))
    assert parts.optimizer.defaults["fused"] is True
    settings = {"lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "nesterov": True}
    fused = torch.optim.SGD(model.parameters(), fused=True, **settings)
    default = torch.optim.SGD(twin.parameters(), **settings)
    for _ in range(5):
        x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
        for net, opt in ((model, fused), (twin, default)):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
    for a, b in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", LOSSES.names())
def test_every_loss_compiles_whole_and_steps_as_eager(name):
    """Dynamo's capture and AOTAutograd's backward (``aot_eager``: the graphs Inductor would
    generate code for, run by eager kernels) on two full batches and a short last one: each of
    forward+loss and the batch sums is one graph per batch size (four, no graph break, so
    nothing falls back to eager between kernels), and the epoch's numbers and the weights are
    the eager step's."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3),
        torch.nn.BatchNorm2d(4),
        torch.nn.Flatten(),
        torch.nn.Linear(144, 3),
    )
    twin = copy.deepcopy(model)
    steps = {
        label: PlainStep(
            net,
            LOSSES.build(name),
            torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9),
            autocast=contextlib.nullcontext(),
            grad_clip=2.0,
            summed=True,
            compiler=compiler,
        )
        for label, net, compiler in (
            ("eager", twin, eager),
            ("compiled", model, Compiler("default", "aot_eager")),
        )
    }
    gen = torch.Generator().manual_seed(1)
    batches = [
        (torch.randn(n, 1, 8, 8, generator=gen), torch.randint(0, 3, (n,), generator=gen))
        for n in (16, 16, 5)
    ]
    counters.clear()
    results = {
        label: train_one_epoch(step, iter(batches), steps=3, progress=False, desc="t")
        for label, step in steps.items()
    }
    assert counters["stats"]["unique_graphs"] == 4 and not counters["graph_break"]
    assert results["compiled"].keys() == results["eager"].keys()
    for key in results["eager"]:
        assert results["compiled"][key] == pytest.approx(results["eager"][key], rel=1e-5, abs=1e-7)
    for a, b in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_each_run_compiles_afresh_so_many_runs_in_one_process_stay_compiled():
    """A study's trials run in one process, each with its own hyper-parameters; the compiled
    step of each is specialised on them. Without a fresh start per run, Dynamo's cache limit
    would be reached after a few trials and the step would quietly run eager."""
    runs = RECOMPILE_LIMIT + 2
    counters.clear()
    for trial in range(runs):
        model = torch.nn.Linear(4, 3)
        step = PlainStep(
            model,
            LOSSES.build("focal", gamma=1.0 + trial / 10),
            torch.optim.SGD(model.parameters(), lr=0.1),
            autocast=contextlib.nullcontext(),
            grad_clip=None,
            summed=False,
            compiler=compiler_for(True, "default", torch.device("cpu"), backend="aot_eager"),
        )
        batch = [(torch.randn(8, 4), torch.randint(0, 3, (8,)))]
        train_one_epoch(step, iter(batch), steps=1, progress=False, desc="t")
    assert counters["stats"]["unique_graphs"] == 2 * runs  # forward+loss and sums, every run


def test_a_resumed_run_updates_as_this_machine_says_not_as_the_checkpoint_did():
    fused = build_parts(load_config(ROOT / "configs/demo.yaml", [*FAST, "optim.fused=true"]))
    state = training_state(fused, 0, BestSoFar("min"))
    assert state["optimizer"]["param_groups"][0]["fused"] is True
    here = build_parts(load_config(ROOT / "configs/demo.yaml", FAST))
    restore(here, state)
    assert here.optimizer.param_groups[0]["fused"] is None  # torch's default, as configured
    assert here.optimizer.param_groups[0]["lr"] == fused.optimizer.param_groups[0]["lr"]


@pytest.mark.slow
def test_a_compiled_run_finishes_with_the_eager_runs_metrics():
    """Inductor on a CPU: the demo for one epoch, compiled and eager, in two experiments (the
    run key is the same, so in one experiment the second would be reused, not trained)."""
    results = {}
    for compiled in (False, True):
        cfg = load_config(
            ROOT / "configs/demo.yaml",
            [
                *FAST,
                "train.epochs=1",
                f"train.compile={compiled}",
                f"tracking.experiment=c{compiled}",
            ],
        )
        outcome = run_experiment(cfg)
        assert outcome.state == "trained"
        results[compiled] = MlflowClient().get_run(outcome.run_id)
    eager_run, compiled_run = results[False], results[True]
    assert compiled_run.info.status == "FINISHED"
    assert compiled_run.data.params["train.compile"] == "True"
    assert compiled_run.data.tags[KEY_TAG] == eager_run.data.tags[KEY_TAG]
    got, want = compiled_run.data.metrics, eager_run.data.metrics
    assert set(got) == set(want)
    for key in ("train/loss", "val/nll", "test/nll", "test_ts/nll"):
        assert got[key] == pytest.approx(want[key], rel=1e-3), key
    for key in ("train/acc", "val/acc", "test/acc", "val/ece_15", "test/ece_15"):
        assert got[key] == pytest.approx(want[key], abs=0.01), key
