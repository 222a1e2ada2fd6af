"""The GPU speed of calibexp's training, in one script: how long the paper protocol takes here.

    python benchmarks/gpu.py --out results.json        # one GPU, at most ~8 minutes
    python benchmarks/gpu.py --smoke --out smoke.json  # the same code on a CPU, tiny, seconds

Nothing is downloaded: images are synthetic CIFAR-shaped uint8 tensors held on the device, and
the end-to-end run reads synthetic files in CIFAR-10's own pickle format. It prints a table and
writes JSON with:

- the device, driver and torch; the device's bf16 dense peak (``PEAK_BF16_TFLOPS`` by name, or
  ``--peak-tflops``);
- for CIFAR ResNet-18, ResNet-50 and WRN-28-10 at batch 128, training images/s through the real
  step loop (``calibexp.engine.train_one_epoch``: device-resident loader with crop+flip, loss,
  evidence sums, one read per epoch) under fp32 eager, bf16 eager and bf16 compiled
  (``train.compile``: CUDA graphs on CUDA, and ``optim.fused``); each is the median of 3 timed
  short epochs of 61 batches, the last one short (72 images, like CIFAR-10's 45,000), after
  untimed warm-up epochs (2 when compiled: cudagraph trees record a shape on its second call);
- the training FLOPs per image counted by ``torch.utils.flop_counter.FlopCounterMode`` (forward
  and backward of one batch; convolutions and matmuls, 2 FLOPs per multiply-add), the achieved
  TFLOP/s and their share of the bf16 peak;
- the input pipeline's share: one epoch of batches alone, against the epoch with the steps;
- evaluation images/s (bf16 eager, batch 1000) and the projected wall time of 350 epochs of
  CIFAR-10 (45,000 training and 5,000 val images an epoch, plus the compilation once) at each
  backbone's fastest mode, and of the paper grid (9 losses × 3 seeds × 2 datasets of each
  backbone), against the goal of 350 ResNet-18 epochs in ≤ 5 minutes;
- the metric suite at N = 10^6, K = 10 and N = 10^5, K = 100 on the device, against
  torchmetrics' ECE on the device + relplot's smECE (numpy on the host, as relplot runs);
- the step loop checked free of host syncs (``train.check_syncs``: CUDA's sync debug mode) for
  every registered loss, eager, and for the compiled ResNet-18 step after its warm-up;
- a real ``mlflow run . -e train`` of a 2-epoch CIFAR-10 ResNet-18 config on the device (tracked)
  against the same training and test evaluation with no MLflow at all: the whole commands' wall
  times and the last epoch's own time;
- with several GPUs, one compiled ResNet-18 worker per GPU (``CUDA_VISIBLE_DEVICES``), all
  timed together once every worker has compiled: the aggregate images/s against one worker
  alone;
- on request (``--parts sharing``, ~3 minutes more), 2 and 4 such workers sharing one GPU, as
  a study's trials could, against one alone.

Each part is measured on its own (a failure is recorded as that part's error, the rest still
runs) and the JSON is rewritten after each part; ``--models`` and ``--parts`` select a subset.
The exit status is 1 if a sync check failed, so the script can gate a GPU CI job.

``--smoke`` runs every part on the CPU with ResNet-18 only, batch 4, epochs of 3 batches, small
metric sizes, a small-CNN end-to-end run on 500 synthetic CIFAR images, two CPU workers in place
of the GPUs' (the launcher and its barrier), and the compiled mode through Dynamo and
AOTAutograd with eager kernels (``backend=aot_eager``; Inductor's code
generation alone takes ~50 s for ResNet-18's two batch shapes on 2 CPU cores). Its figures are
not speed figures; it is there so the script is known to work before a GPU is spent on it.

Last measured: never on a GPU: no GPU was lent where this was written (2026-12-07). CPU smoke:
see the test ``tests/benchmarks/test_gpu_smoke.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.train_step import NUM_CLASSES, synchronize, synthetic_loader  # noqa: E402

CIFAR10_TRAIN, CIFAR10_VAL, EPOCHS = 45_000, 5_000, 350
GOAL_RESNET18_MIN = 5.0
GRID_RUNS_PER_BACKBONE = 9 * 3 * 2  # losses x seeds x datasets
# bf16 dense tensor-core peaks in TFLOP/s, by a part of the name torch reports (first match).
PEAK_BF16_TFLOPS = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.4),  # SXM: "NVIDIA H100 80GB HBM3"
    ("H200", 989.4),
    ("GH200", 989.4),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
    ("A10", 125.0),
    ("RTX 4090", 165.2),
)
MODELS = {  # registry name and parameters: the CIFAR variants of the papers' backbones
    "resnet18": ("resnet18", {"cifar_stem": True}),
    "resnet50": ("resnet50", {"cifar_stem": True}),
    "wrn28_10": ("wrn28_10", {}),  # Zagoruyko & Komodakis' pre-activation WRN-28-10
}


@dataclass(frozen=True)
class Mode:
    name: str
    precision: str  # train.precision
    compiled: bool  # train.compile and optim.fused


MODES = (Mode("fp32 eager", "fp32", False), Mode("bf16 eager", "bf16", False))
COMPILED = Mode("bf16 compiled", "bf16", True)


@dataclass(frozen=True)
class Sizes:
    batch: int
    full_batches: int  # per short epoch, plus one short batch of `last`
    last: int
    warmup: int
    timed: int
    eval_images: int
    metric_cases: tuple[tuple[int, int], ...]
    models: tuple[str, ...]
    compile_backend: str
    worker_epochs: int  # short epochs each throughput worker times, all workers at once


GPU_SIZES = Sizes(
    128, 60, 72, 1, 3, 10_000, ((10**6, 10), (10**5, 100)), tuple(MODELS), "inductor", 10
)
SMOKE_SIZES = Sizes(4, 2, 2, 1, 1, 16, ((2_000, 10), (500, 100)), ("resnet18",), "aot_eager", 1)


def describe(device: torch.device) -> dict[str, Any]:
    from calibexp.engine import describe_device

    info = {
        "device": describe_device(device),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "driver": None,
        "cudnn_tf32": torch.backends.cudnn.allow_tf32,  # fp32 convolutions in TF32 (default)
    }
    if device.type == "cuda":
        try:  # torch has no driver-version API (_cuda_getDriverVersion is the CUDA API level)
            query = ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]
            info["driver"] = subprocess.run(
                query, capture_output=True, text=True, timeout=30
            ).stdout.split("\n")[0]
        except (OSError, subprocess.SubprocessError):
            info["driver"] = "unknown (no nvidia-smi)"
    return info


def peak_tflops(name: str, given: float | None) -> float | None:
    if given is not None:
        return given
    return next((peak for part, peak in PEAK_BF16_TFLOPS if part in name), None)


# ----------------------------------------------------------------------------- training speed


def build_model(key: str, device: torch.device) -> torch.nn.Module:
    from calibexp.models import BACKBONES
    from calibexp.parts import place_model

    name, params = MODELS[key]
    return place_model(BACKBONES.build(name, NUM_CLASSES, 3, **params), device)


def build_step(model, mode: Mode, device: torch.device, backend: str, loss: str = "ce"):
    from calibexp.engine import PlainStep, autocast_for
    from calibexp.execution import compiler_for
    from calibexp.losses import LOSSES

    precision = mode.precision if device.type == "cuda" else "auto"  # no bf16 autocast on CPU
    optimizer = torch.optim.SGD(
        model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, fused=mode.compiled or None
    )
    return PlainStep(
        model,
        LOSSES.build(loss).to(device),
        optimizer,
        autocast=autocast_for(device, precision),
        grad_clip=None,
        summed=False,
        compiler=compiler_for(mode.compiled, "auto", device, backend),
    )


def timed_epoch(step, loader, device: torch.device, epoch: int, check_syncs=False) -> float:
    from calibexp.engine import train_one_epoch
    from calibexp.seeding import epoch_generator

    synchronize(device)
    start = time.perf_counter()
    train_one_epoch(
        step,
        loader.batches(epoch_generator(0, epoch, device)),
        steps=len(loader),
        progress=False,
        desc="bench",
        check_syncs=check_syncs,
    )
    synchronize(device)  # the epoch's read already waited; this is for the CPU-side clock
    return time.perf_counter() - start


def input_seconds(loader, device: torch.device) -> float:
    """One epoch of batches with nothing done to them: shuffle, gather, crop+flip, normalise."""
    from calibexp.seeding import epoch_generator

    synchronize(device)
    start = time.perf_counter()
    for _ in loader.batches(epoch_generator(0, 99, device)):
        pass
    synchronize(device)
    return time.perf_counter() - start


def training_flops_per_image(key: str, device: torch.device, batch: int) -> tuple[float, float]:
    """(training, forward) FLOPs per 32x32 image: one eager fp32 batch through FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model(key, device).train()
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, NUM_CLASSES, (batch,), device=device)
    with FlopCounterMode(display=False) as forward_only:
        with torch.no_grad():
            model(x)
    with FlopCounterMode(display=False) as training:
        torch.nn.functional.cross_entropy(model(x), y).backward()
    return training.get_total_flops() / batch, forward_only.get_total_flops() / batch


def measure_training(key: str, mode: Mode, device: torch.device, sizes: Sizes) -> dict[str, Any]:
    n = sizes.batch * sizes.full_batches + sizes.last
    loader = synthetic_loader(n, sizes.batch, device)
    step = build_step(build_model(key, device), mode, device, sizes.compile_backend)
    warmups = sizes.warmup + (1 if mode.compiled else 0)
    started = time.perf_counter()
    first = [timed_epoch(step, loader, device, e) for e in range(warmups)]
    compile_s = time.perf_counter() - started if mode.compiled else None
    times = [timed_epoch(step, loader, device, warmups + e) for e in range(sizes.timed)]
    epoch_s = statistics.median(times)
    result = {
        "model": key,
        "mode": mode.name,
        "images_per_s": n / epoch_s,
        "step_ms": 1000 * epoch_s / len(loader),
        "warmup_s": sum(first),
        "compile_s": compile_s,
        "input_share": statistics.median(input_seconds(loader, device) for _ in range(3)) / epoch_s,
    }
    if mode.compiled and device.type == "cuda":  # the compiled step, after its recording
        result["sync_free"] = sync_verdict(
            lambda: timed_epoch(step, loader, device, 50, check_syncs=True)
        )
    return result


def sync_verdict(epoch) -> str:
    from calibexp.execution import HostSyncError

    try:
        epoch()
    except HostSyncError as err:
        return f"SYNC: {err}"
    return "ok"


def check_losses(device: torch.device, sizes: Sizes) -> dict[str, str]:
    """One checked short epoch of eager ResNet-18 under every registered loss."""
    from calibexp.losses import LOSSES

    loader = synthetic_loader(sizes.batch * 4 + sizes.last, sizes.batch, device)
    verdicts = {}
    for name in LOSSES.names():
        step = build_step(build_model("resnet18", device), MODES[1], device, "inductor", name)
        timed_epoch(step, loader, device, 0)  # cuDNN's autotuning syncs on first use
        verdicts[name] = sync_verdict(partial(timed_epoch, step, loader, device, 1, True))
    return verdicts


def eval_images_per_s(key: str, device: torch.device, sizes: Sizes) -> float:
    from calibexp.engine import autocast_for, predict

    loader = synthetic_loader(sizes.eval_images, 1000, device)
    model = build_model(key, device)
    autocast = autocast_for(device, "auto")
    predict(model, loader, autocast)  # warm-up (cuDNN autotuning)
    times = []
    for _ in range(3):
        synchronize(device)
        start = time.perf_counter()
        predict(model, loader, autocast)
        synchronize(device)
        times.append(time.perf_counter() - start)
    return sizes.eval_images / statistics.median(times)


# ----------------------------------------------------------------------------- metrics


def metric_suite_vs_libraries(device: torch.device, cases, repeats: int = 5) -> list[dict]:
    from benchmarks.metrics import BINS, roughly_calibrated_data, suite_and_baseline_medians

    rows = []
    for n, k in cases:
        logits, targets = (t.to(device) for t in roughly_calibrated_data(n, k))
        # both end in a host read, so each time is complete on a GPU too
        suite, baseline = suite_and_baseline_medians(logits, targets, repeats)
        rows.append({"n": n, "k": k, "bins": BINS, "suite_s": suite, "baseline_s": baseline})
    return rows


# ----------------------------------------------------------------------------- end to end


def end_to_end(device: torch.device, smoke: bool) -> dict[str, Any]:
    """``mlflow run . -e train`` of a 2-epoch CIFAR-10 config on synthetic files in the real
    format, against ``--untracked`` (the same training and test evaluation, no MLflow)."""
    with tempfile.TemporaryDirectory(prefix="calibexp-gpu-") as folder:
        return _end_to_end_in(Path(folder), device, smoke)


def _end_to_end_in(work: Path, device: torch.device, smoke: bool) -> dict[str, Any]:
    from tests.support import mlflow_run
    from tests.support.fake_datasets import write_cifar10

    per_batch, test, val = (100, 100, 100) if smoke else (10_000, 10_000, CIFAR10_VAL)
    write_cifar10(work / "data", per_batch=per_batch, test=test)
    model = "small_cnn" if smoke else "resnet18"
    config = " ".join(
        str(ROOT / "configs/_base_" / part)
        for part in (
            "datasets/cifar10.yaml",
            "schedules/cifar_350e.yaml",
            f"models/{model}.yaml",
            "losses/ce.yaml",
        )
    )
    overrides = [
        f"data.root={work / 'data'}",
        f"data.val_size={val}",
        "train.epochs=2",
        "train.progress=false",
        f"device={device.type}",
        "tracking.experiment=gpu-benchmark",
    ]
    uri = f"sqlite:///{work}/mlflow.db"
    start = time.perf_counter()
    tracked = mlflow_run(uri, "-P", f"config={config}", "-P", f"overrides={' '.join(overrides)}")
    tracked_s = time.perf_counter() - start
    start = time.perf_counter()
    untracked = subprocess.run(
        [sys.executable, __file__, "--untracked", config, *overrides],
        capture_output=True,
        text=True,
        cwd=work,
    )
    untracked_s = time.perf_counter() - start
    for name, done in (("mlflow run", tracked), ("untracked run", untracked)):
        if done.returncode != 0:
            raise RuntimeError(f"{name} failed: {(done.stderr or done.stdout)[-2000:]}")
    # The last epoch's own time (each run prints it): after cuDNN's autotuning, with the
    # recording done on the training thread; the whole commands add the CLI, the run's set-up
    # and its final evaluation and artifacts.
    tracked_epoch, untracked_epoch = (epoch_seconds(d.stdout)[-1] for d in (tracked, untracked))
    return {
        "config": config,
        "overrides": overrides,
        "tracked_s": tracked_s,
        "untracked_s": untracked_s,
        "ratio": tracked_s / untracked_s,
        "tracked_last_epoch_s": tracked_epoch,
        "untracked_last_epoch_s": untracked_epoch,
        "epoch_ratio": tracked_epoch / untracked_epoch,
    }


def epoch_seconds(output: str) -> list[float]:
    """The epoch times a run printed (``calibexp.training.print_epoch``: "... (12.3 s)")."""
    return [float(s) for s in re.findall(r"^epoch \d+/\d+ .*\(([\d.]+) s\)$", output, re.M)]


def untracked_run(config: str, overrides: list[str]) -> None:
    """What ``-e train`` computes, without MLflow: fit, then the test split's metric suite."""
    from calibexp.config import load_config
    from calibexp.engine import predict
    from calibexp.metrics import metric_suite
    from calibexp.parts import build_parts
    from calibexp.tracking.recorder import NoRecorder
    from calibexp.training import BestSoFar, fit

    cfg = load_config(config, overrides)
    parts = build_parts(cfg)
    fit(parts, NoRecorder(), 0, BestSoFar(cfg.eval.best_mode))
    print(metric_suite(*predict(parts.model, parts.test_loader, parts.autocast)))


# ----------------------------------------------------------------------------- several GPUs


def throughput_worker() -> None:
    """One compiled ResNet-18 on this process's GPU (a CPU in a smoke run): warm up (compile,
    record the graphs), say "ready", wait for "go" on stdin, then time ``sizes.worker_epochs``
    epochs and print them as JSON with wall-clock start and end (one clock for every worker
    of the machine)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sizes = GPU_SIZES if device.type == "cuda" else SMOKE_SIZES
    torch.backends.cudnn.benchmark = True
    n = sizes.batch * sizes.full_batches + sizes.last
    loader = synthetic_loader(n, sizes.batch, device)
    step = build_step(build_model("resnet18", device), COMPILED, device, sizes.compile_backend)
    for epoch in range(sizes.warmup + 1):
        timed_epoch(step, loader, device, epoch)
    print("ready", flush=True)
    sys.stdin.readline()
    start = time.time()
    for epoch in range(sizes.worker_epochs):
        timed_epoch(step, loader, device, 10 + epoch)
    end = time.time()
    print(json.dumps({"images": n * sizes.worker_epochs, "start": start, "end": end}), flush=True)


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES names them (or their indices)."""
    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    names = [g.strip() for g in given.split(",")] if given else []
    return names[: torch.cuda.device_count()] or [str(i) for i in range(torch.cuda.device_count())]


def timed_workers(gpus: list[str]) -> float:
    """Aggregate images/s of one ``throughput_worker`` per entry of ``gpus`` (its
    CUDA_VISIBLE_DEVICES; "" = none, a CPU), timed together once every one has warmed up: all
    images / the span from the first start to the last end."""
    workers = [
        subprocess.Popen(
            [sys.executable, __file__, "--throughput-worker"],
            env={**os.environ, "CUDA_VISIBLE_DEVICES": gpu},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for gpu in gpus
    ]
    try:
        for worker in workers:  # the barrier: every worker compiled and recorded
            if not any(line.strip() == "ready" for line in iter(worker.stdout.readline, "")):
                raise RuntimeError(f"a worker died warming up (exit {worker.wait()})")
        for worker in workers:
            worker.stdin.write("go\n")
            worker.stdin.flush()
        timed = [json.loads(w.communicate()[0].strip().splitlines()[-1]) for w in workers]
    finally:
        for worker in workers:  # none left behind holding a GPU, whatever went wrong
            if worker.poll() is None:
                worker.kill()
    span = max(t["end"] for t in timed) - min(t["start"] for t in timed)
    return sum(t["images"] for t in timed) / span


def several_gpus(gpus: list[str]) -> dict[str, Any]:
    """One compiled ResNet-18 worker per GPU, against the first GPU's worker alone."""
    alone, together = timed_workers(gpus[:1]), timed_workers(gpus)
    return {
        "gpus": len(gpus),
        "gpus_used": all(gpus),  # False in a smoke run: CPU workers
        "one_worker_images_per_s": alone,
        "all_workers_images_per_s": together,
        "scaling": together / alone,
    }


def sharing_one_gpu(gpu: str, counts: tuple[int, ...] = (2, 4)) -> dict[str, Any]:
    """Several compiled ResNet-18 workers on one GPU (several trials at once, where one small
    model at batch 128 leaves the GPU partly idle), against one worker alone."""
    alone = timed_workers([gpu])
    shared = {k: timed_workers([gpu] * k) for k in counts}
    return {
        "one_worker_images_per_s": alone,
        "workers": {str(k): {"images_per_s": v, "gain": v / alone} for k, v in shared.items()},
    }


# ----------------------------------------------------------------------------- report


def projections(results: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key in {r["model"] for r in results["training"] if "images_per_s" in r}:
        rows = [r for r in results["training"] if r["model"] == key and "images_per_s" in r]
        best = max(rows, key=lambda r: r["images_per_s"])
        eval_ips = results["eval_images_per_s"].get(key)
        eval_ips = eval_ips if isinstance(eval_ips, float) else None  # None: it failed
        epoch_s = CIFAR10_TRAIN / best["images_per_s"] + (CIFAR10_VAL / eval_ips if eval_ips else 0)
        # once per run: compiling and recording the graphs (here with 2 short warm-up epochs)
        run_s = EPOCHS * epoch_s + (best["compile_s"] or 0)
        out[key] = {
            "mode": best["mode"],
            "minutes_350_epochs": run_s / 60,
            "grid_gpu_hours": GRID_RUNS_PER_BACKBONE * run_s / 3600,
        }
    return out


def print_report(results: dict[str, Any]) -> None:
    info, peak = results["info"], results["peak_bf16_tflops"]
    smoke = "  (SMOKE: not speed figures)" if results["smoke"] else ""
    print(
        f"\n{info['device']}  driver {info['driver']}  torch {info['torch']}  CUDA {info['cuda']}"
        f"  bf16 peak {peak if peak else 'unknown'} TFLOP/s{smoke}"
    )
    header = ("model", "mode", "img/s", "step ms", "TFLOP/s", "peak", "input")
    print("\n{:<10} {:<14} {:>9} {:>8} {:>8} {:>6} {:>6}  compile / sync check".format(*header))
    for r in results["training"]:
        if "error" in r:
            print(f"{r['model']:<10} {r['mode']:<14} ERROR {r['error']}")
            continue
        share = f"{r['peak_share']:.1%}" if r.get("peak_share") is not None else "-"
        extra = f"{r['compile_s']:.0f} s" if r["compile_s"] is not None else ""
        extra += f"  {r['sync_free']}" if "sync_free" in r else ""
        print(
            f"{r['model']:<10} {r['mode']:<14} {r['images_per_s']:>9,.0f} {r['step_ms']:>8.2f} "
            f"{r['tflops']:>8.1f} {share:>6} {r['input_share']:>6.1%}  {extra}"
        )
    if results.get("projection"):
        print("\nprojected on CIFAR-10 (45k train + 5k val an epoch, compilation once), fastest:")
    for key, p in sorted(results.get("projection", {}).items()):
        print(
            f"  {key:<10} {p['mode']:<14} 350 epochs {p['minutes_350_epochs']:6.1f} min; "
            f"paper grid ({GRID_RUNS_PER_BACKBONE} runs) {p['grid_gpu_hours']:6.1f} GPU-hours"
        )
    if "resnet18" in results.get("projection", {}):
        minutes = results["projection"]["resnet18"]["minutes_350_epochs"]
        verdict = "meets" if minutes <= GOAL_RESNET18_MIN else "misses"
        goal = f"350 ResNet-18 epochs in <= {GOAL_RESNET18_MIN:.0f} min"
        print(f"  goal: {goal}: {verdict} ({minutes:.1f} min)")
    for name, show in (
        ("metrics", show_metrics),
        ("syncs", show_syncs),
        ("end_to_end", show_end_to_end),
        ("several_gpus", show_several_gpus),
        ("sharing", show_sharing),
    ):
        if name in results and "error" in results[name]:
            print(f"\n{name}: ERROR {results[name]['error']}")
        elif name in results:
            show(results[name])


def show_metrics(rows: list[dict[str, Any]]) -> None:
    print("\nmetric suite on the device vs torchmetrics ECE + relplot smECE:")
    for m in rows:
        ratio = m["suite_s"] / m["baseline_s"]
        print(
            f"  N={m['n']:>8,} K={m['k']:>3}  suite {1000 * m['suite_s']:8.1f} ms   "
            f"libraries {1000 * m['baseline_s']:8.1f} ms   ratio {ratio:.2f}"
        )


def show_syncs(verdicts: dict[str, str]) -> None:
    print("\nstep loop free of host syncs (eager, every loss):")
    for name, verdict in verdicts.items():
        print(f"  {name:<16} {verdict}")


def show_end_to_end(e2e: dict[str, Any]) -> None:
    print(
        f"\nmlflow run, 2 CIFAR-10 epochs: {e2e['tracked_s']:.1f} s tracked vs "
        f"{e2e['untracked_s']:.1f} s untracked: {e2e['ratio']:.3f} (whole command); last "
        f"epoch {e2e['tracked_last_epoch_s']:.2f} s vs {e2e['untracked_last_epoch_s']:.2f} s: "
        f"{e2e['epoch_ratio']:.3f}"
    )


def show_sharing(s: dict[str, Any]) -> None:
    print(f"\none GPU shared, compiled ResNet-18: one worker {s['one_worker_images_per_s']:,.0f}")
    for k, w in s["workers"].items():
        print(f"  {k} workers: {w['images_per_s']:,.0f} images/s in all, {w['gain']:.2f}x")


def show_several_gpus(s: dict[str, Any]) -> None:
    print(
        f"\n{s['gpus']} {'GPUs' if s['gpus_used'] else 'CPU workers (smoke)'}, one compiled "
        "ResNet-18 worker each: "
        f"{s['all_workers_images_per_s']:,.0f} images/s, {s['scaling']:.2f}x one worker's "
        f"{s['one_worker_images_per_s']:,.0f}"
    )


PARTS = ("training", "metrics", "syncs", "end_to_end", "several_gpus", "sharing")
DEFAULT_PARTS = PARTS[:-1]  # sharing one GPU between workers: ~3 more minutes, on request


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny sizes: does it run?")
    parser.add_argument("--peak-tflops", type=float, help="the device's bf16 dense peak")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), help="default: all three")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(DEFAULT_PARTS))
    parser.add_argument("--untracked", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--throughput-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.untracked:
        untracked_run(args.untracked[0], args.untracked[1:])
        return 0
    if args.throughput_worker:
        throughput_worker()
        return 0
    device = torch.device("cpu") if args.smoke else torch.device("cuda")
    if not args.smoke and not torch.cuda.is_available():
        print("gpu.py: no CUDA device here; run with --smoke to check the script on a CPU")
        return 2
    sizes = SMOKE_SIZES if args.smoke else GPU_SIZES
    if args.models:
        sizes = dataclasses.replace(sizes, models=tuple(args.models))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    info = describe(device)
    results: dict[str, Any] = {
        "info": info,
        "smoke": args.smoke,
        "peak_bf16_tflops": peak_tflops(info["device"], args.peak_tflops),
        "sizes": sizes.__dict__,
        "training": [],
        "eval_images_per_s": {},
    }

    def part(name: str, measure) -> None:  # noqa: ANN001
        """One part's result under ``name``, or its error: a failure costs only that part.
        The JSON is rewritten after each, so a run cut short keeps what it measured."""
        try:
            results[name] = measure()
        except Exception as err:  # noqa: BLE001
            traceback.print_exc()
            results[name] = {"error": f"{type(err).__name__}: {err}"}
        if args.out:
            args.out.write_text(json.dumps(results, indent=2))

    if "training" in args.parts:
        for key in sizes.models:
            part(f"flops/{key}", partial(training_flops_per_image, key, device, sizes.batch))
            for mode in (*MODES, COMPILED):
                part("row", partial(measure_training, key, mode, device, sizes))
                row = {"model": key, "mode": mode.name, **results.pop("row")}
                flops = results[f"flops/{key}"]
                if "images_per_s" in row and isinstance(flops, tuple):
                    row.update(train_flops_per_image=flops[0], forward_flops_per_image=flops[1])
                    row["tflops"] = flops[0] * row["images_per_s"] / 1e12
                    peak = results["peak_bf16_tflops"]
                    row["peak_share"] = row["tflops"] / peak if peak else None
                results["training"].append(row)
                print(json.dumps(row), flush=True)
            part("eval", partial(eval_images_per_s, key, device, sizes))
            results["eval_images_per_s"][key] = results.pop("eval")
        results["projection"] = projections(results)
    if "metrics" in args.parts:
        part("metrics", partial(metric_suite_vs_libraries, device, sizes.metric_cases))
    if "syncs" in args.parts:
        part("syncs", partial(check_losses, device, sizes))
    if "end_to_end" in args.parts:
        part("end_to_end", partial(end_to_end, device, args.smoke))
    # A smoke run starts two CPU workers: the launcher and its barrier are exercised too.
    gpus = visible_gpus() if device.type == "cuda" else ["", ""]
    if "several_gpus" in args.parts and len(gpus) > 1:
        part("several_gpus", partial(several_gpus, gpus))
    if "sharing" in args.parts and device.type == "cuda":
        part("sharing", partial(sharing_one_gpu, gpus[0]))
    print_report(results)
    if args.out:
        print(f"\nwritten: {args.out}")
    syncs = results.get("syncs", {})
    synced = [r["sync_free"] for r in results["training"] if r.get("sync_free", "ok") != "ok"]
    synced += [v for v in syncs.values() if v != "ok"] if "error" not in syncs else ["error"]
    return 1 if synced else 0


if __name__ == "__main__":
    sys.exit(main())
