"""Everything one run trains and evaluates with, built from the registries: data and loaders,
model, loss, optimiser, schedule and autocast."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch

from calibexp.config import ExperimentConfig
from calibexp.data import DATASETS, DataBundle, DeviceLoader
from calibexp.engine import PlainStep, autocast_for, resolve_device
from calibexp.errors import CalibexpError
from calibexp.execution import compiler_for
from calibexp.losses import LOSSES
from calibexp.models import BACKBONES
from calibexp.optim import OPTIMIZERS, SCHEDULES
from calibexp.registry import hyperparameters
from calibexp.seeding import seed_everything


@dataclass
class Parts:
    """Everything one run trains and evaluates with."""

    cfg: ExperimentConfig
    device: torch.device
    data: DataBundle
    train_loader: DeviceLoader
    val_loader: DeviceLoader
    test_loader: DeviceLoader
    model: torch.nn.Module
    loss: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    autocast: Any
    step: PlainStep  # how each training batch is stepped on: plain, or meta-calibration's


def build_data(
    cfg: ExperimentConfig, device: torch.device, cache: dict[str, Any] | None = None
) -> tuple[DataBundle, list[DeviceLoader]]:
    """The dataset and its loaders; with ``cache``, a dataset already built with the same
    settings in this process is reused (study trials load the data once)."""
    key = repr(sorted(hyperparameters(cfg.data).items())) + cfg.data.name
    if cache is not None and key in cache:
        data = cache[key]
    else:
        data = DATASETS.build(cfg.data.name, **hyperparameters(cfg.data))
        if cache is not None:
            cache[key] = data
    test_normalisation = data.test_normalisation or (data.mean, data.std)
    loaders = [
        DeviceLoader(
            data.train, cfg.train.batch_size, device, data.mean, data.std, data.train_augment
        ),
        DeviceLoader(data.val, cfg.eval.batch_size, device, data.mean, data.std),
        DeviceLoader(data.test, cfg.eval.batch_size, device, *test_normalisation),
    ]
    return data, loaders


def build_model(cfg: ExperimentConfig, data: DataBundle, device: torch.device) -> torch.nn.Module:
    model = BACKBONES.build(
        cfg.model.name, data.num_classes, data.in_channels, **hyperparameters(cfg.model)
    )
    return place_model(model, device)


def place_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` on ``device``, channels_last on CUDA (NHWC convolutions are the fast ones on
    tensor cores; the loader hands CUDA batches over in the same layout)."""
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model.to(device)


def build_parts(cfg: ExperimentConfig, data_cache: dict[str, Any] | None = None) -> Parts:
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed, cfg.deterministic)
    data, (train_loader, val_loader, test_loader) = build_data(cfg, device, data_cache)
    model = build_model(cfg, data, device)
    optimizer = OPTIMIZERS.build(cfg.optim.name, model.parameters(), **hyperparameters(cfg.optim))
    scheduler = SCHEDULES.build(cfg.schedule.name, optimizer, **hyperparameters(cfg.schedule))
    if cfg.train.lr_step == "epoch_start":
        step_before_training(scheduler)
    loss = LOSSES.build(cfg.loss.name, **hyperparameters(cfg.loss)).to(device)
    autocast = autocast_for(device, cfg.train.precision)
    return Parts(
        cfg=cfg,
        device=device,
        data=data,
        train_loader=train_loader,
        val_loader=val_loader,
        test_loader=test_loader,
        model=model,
        loss=loss,
        optimizer=optimizer,
        scheduler=scheduler,
        autocast=autocast,
        step=build_step(cfg, data, model, loss, optimizer, autocast),
    )


def build_step(
    cfg: ExperimentConfig,
    data: DataBundle,
    model: torch.nn.Module,
    loss: Any,
    optimizer: torch.optim.Optimizer,
    autocast: Any,
) -> PlainStep:
    """The training step strategy: plain, or meta-calibration's with the learner ``meta.name``
    on the meta-val split (never augmented)."""
    settings = {
        "autocast": autocast,
        "grad_clip": cfg.train.grad_clip,
        "summed": cfg.train.loss_reduction == "sum" and loss.sums_over_batch,
    }
    if not cfg.meta.enabled:  # train.compile with meta is refused when the config is loaded
        device = next(model.parameters()).device
        compiler = compiler_for(cfg.train.compile, cfg.train.compile_mode, device)
        return PlainStep(model, loss, optimizer, compiler=compiler, **settings)
    from calibexp.meta.learners import META_LEARNERS
    from calibexp.meta.step import MetaStep, classifier_head

    if cfg.meta.per_domain and not data.domain_names:
        raise CalibexpError(
            f"meta.per_domain=true needs a dataset of several domains; {cfg.data.name} has one "
            "(use data.name=rotated_digits or cifar10_domains)"
        )
    device = next(model.parameters()).device
    head = classifier_head(model)[1]
    # One row of hyper-parameters per seen domain (meta.per_domain), else one for all.
    seen = data.seen_domains if cfg.meta.per_domain else ()
    rows = [seen.index(name) if name in seen else -1 for name in data.domain_names]
    domains = len(seen) or 1
    learner = META_LEARNERS.build(
        cfg.meta.name, data.num_classes, [head.weight.shape, head.bias.shape], domains
    ).to(device)
    # data.meta_val exists: a meta config without data.meta_val_size > 0 is refused at load
    meta_val = DeviceLoader(data.meta_val, cfg.train.batch_size, device, data.mean, data.std)
    return MetaStep(
        model,
        loss,
        optimizer,
        learner,
        meta_val,
        cfg.meta,
        seed=cfg.seed,
        seen_domains=seen,
        domain_rows=torch.tensor(rows, device=device) if seen else None,
        **settings,
    )


def step_before_training(scheduler: Any) -> None:
    """The references' order, ``scheduler.step()`` at the start of every epoch (torrvision
    ``train.py``), as calibexp's step after every epoch plus one step before the first: epoch e
    then trains at the schedule's epoch e + 1, so milestone m drops the LR from epoch m − 1."""
    with warnings.catch_warnings():  # the step before any optimizer.step() is the point here
        warnings.filterwarnings(
            "ignore", message="Detected call of `lr_scheduler.step", category=UserWarning
        )
        scheduler.step()
