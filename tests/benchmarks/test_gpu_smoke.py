"""``benchmarks/gpu.py --smoke``: the GPU benchmark's every part runs on a CPU and reports what
it measured; its FLOP count is the hand count of CIFAR ResNet-18."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from tests.support import ROOT, subprocess_env


def resnet18_cifar_macs() -> tuple[int, int]:
    """(forward multiply-adds per 32x32 image, those of the first convolution): 3x3 stem
    convolution 3->64 at 32x32, four stages of two basic blocks (64, 128, 256, 512 channels at
    32, 16, 8, 4 px; the first convolution of stages 2-4 strides from the previous width and a
    1x1 projection joins it), a 512->10 linear layer."""
    stem = 32 * 32 * 64 * 3 * 9
    macs = stem + 4 * 32 * 32 * 64 * 64 * 9  # stage 1: four 64->64 convolutions
    for size, width in ((16, 128), (8, 256), (4, 512)):
        pixels = size * size
        macs += pixels * width * (width // 2) * 9  # strided first convolution
        macs += 3 * pixels * width * width * 9  # the other three
        macs += pixels * width * (width // 2)  # 1x1 projection shortcut
    return macs + 512 * 10, stem


def wrn28_10_macs() -> int:
    """Forward multiply-adds of WRN-28-10 on a 32x32 image: a 3x3 stem 3->16, three stages of
    four pre-activation blocks (two 3x3 convolutions each) at widths 160, 320, 640 and 32, 16,
    8 px, the first block of each stage striding from the previous width (stage 1: from the
    stem's 16) with a 1x1 projection shortcut, and a 640->10 linear layer."""
    macs, previous = 32 * 32 * 16 * 3 * 9, 16
    for size, width in ((32, 160), (16, 320), (8, 640)):
        pixels = size * size
        macs += pixels * width * previous * 9 + pixels * width * previous  # conv + shortcut
        macs += 7 * pixels * width * width * 9  # the block's second conv, three more blocks
        previous = width
    return macs + 640 * 10


def test_the_benchmarks_flop_counts_are_the_hand_counts():
    """All three benchmarked backbones build and are counted; ResNet-18 and WRN-28-10 equal
    their hand counts, ResNet-50 the published 1.30 GMACs (Mukhoti et al.'s CIFAR variant,
    as tabulated by DA2Lite's model zoo) to 1%."""
    from benchmarks.gpu import MODELS, training_flops_per_image

    assert set(MODELS) == {"resnet18", "resnet50", "wrn28_10"}
    cpu = torch.device("cpu")
    macs, stem = resnet18_cifar_macs()
    assert training_flops_per_image("resnet18", cpu, 1) == (6 * macs - 2 * stem, 2 * macs)
    train, forward = training_flops_per_image("wrn28_10", cpu, 1)
    assert forward == 2 * wrn28_10_macs() == 10_486_657_536
    assert train == 3 * forward - 2 * 32 * 32 * 16 * 3 * 9  # no gradient for the image
    train, forward = training_flops_per_image("resnet50", cpu, 1)
    assert forward == pytest.approx(2 * 1.30e9, rel=0.01)
    assert train == pytest.approx(3 * forward, rel=0.002)


@pytest.mark.slow
def test_gpu_benchmark_smoke_runs_every_part_on_cpu(tmp_path, tracking_store):
    out = tmp_path / "smoke.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/gpu.py"), "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        env=subprocess_env(tracking_store),
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["smoke"] and results["info"]["device"].startswith("CPU")
    rows = {r["mode"]: r for r in results["training"]}
    assert set(rows) == {"fp32 eager", "bf16 eager", "bf16 compiled"}
    macs, stem = resnet18_cifar_macs()
    for row in rows.values():
        assert "error" not in row, row
        assert row["model"] == "resnet18" and row["images_per_s"] > 0
        assert row["forward_flops_per_image"] == 2 * macs
        # backward: the gradient of every input and every weight, but no input gradient
        # for the image itself
        assert row["train_flops_per_image"] == 3 * 2 * macs - 2 * stem
        assert row["tflops"] == pytest.approx(
            row["train_flops_per_image"] * row["images_per_s"] / 1e12
        )
        assert 0 < row["input_share"] < 1
    assert rows["bf16 compiled"]["compile_s"] > 0 and rows["fp32 eager"]["compile_s"] is None
    projection = results["projection"]["resnet18"]
    eval_ips = results["eval_images_per_s"]["resnet18"]
    best = max(rows.values(), key=lambda r: r["images_per_s"])
    epoch_s = 45_000 / best["images_per_s"] + 5_000 / eval_ips
    run_s = 350 * epoch_s + (best["compile_s"] or 0)  # compiling once per run
    assert projection["minutes_350_epochs"] == pytest.approx(run_s / 60)
    assert projection["grid_gpu_hours"] == pytest.approx(54 * run_s / 3600)
    assert [(m["n"], m["k"]) for m in results["metrics"]] == [(2000, 10), (500, 100)]
    assert all(m["suite_s"] > 0 and m["baseline_s"] > 0 for m in results["metrics"])
    from calibexp.losses import LOSSES

    assert results["syncs"] == {name: "ok" for name in LOSSES.names()}
    e2e = results["end_to_end"]
    assert e2e["ratio"] == pytest.approx(e2e["tracked_s"] / e2e["untracked_s"])
    last = e2e["tracked_last_epoch_s"] / e2e["untracked_last_epoch_s"]
    assert e2e["epoch_ratio"] == pytest.approx(last) and last > 0
    several = results["several_gpus"]  # two CPU workers: launched, warmed, timed together
    assert several["gpus"] == 2 and not several["gpus_used"]
    assert several["scaling"] == pytest.approx(
        several["all_workers_images_per_s"] / several["one_worker_images_per_s"]
    )
    assert "sharing" not in results  # on request only, and only on a GPU
    assert "350 epochs" in done.stdout and "goal: 350 ResNet-18 epochs" in done.stdout
