"""The meta-calibration training step (Bohdal, Yang, Hospedales, TMLR 2023), as
ondrejbohdal/meta-calibration ``train_utils.train_single_epoch`` takes it, a step strategy the
epoch loop is given like the plain one (``calibexp.engine.PlainStep``).

On each training batch (x, y) and the next meta-val batch (x_v, y_v):

1. z = f(x); L(λ) = the learner's training loss under hyper-parameters λ, summed over the
   batch under ``train.loss_reduction: sum`` (the reference's, with ``protocol: metacal``),
   else its batch mean; g = ∂L/∂θ_head, kept differentiable in λ.
2. Look-ahead: θ′_head = θ_head − η·g, plain SGD at the epoch's learning rate η on the final
   layer only (no momentum, weight decay or clipping).
3. z_v = f(x_v) with θ′_head (BatchNorm in train mode: ``meta.bn_from_meta_val``).
4. Meta-loss M = CE(z_v, y_v) + β·DECE(z_v, y_v) (or β·DECE: ``meta.objective: dece``).
5. λ ← Adam(λ, ∂M/∂λ), then clamped into its range.
6. L(λ) again on the same z with the new λ; the model steps on ∇L (clipped, SGD). With
   ``meta.leak_to_model`` (the reference's default) the model's gradients still hold ∂M/∂θ from
   step 5's backward, so the model also trains on the meta-objective of the meta-val batch.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from calibexp.config import MetaConfig
from calibexp.data.loader import DeviceLoader
from calibexp.engine import PlainStep
from calibexp.errors import CalibexpError
from calibexp.losses.base import CalibrationLoss
from calibexp.meta.dece import dece
from calibexp.meta.learners import MetaLearner
from calibexp.seeding import epoch_generator

META_VAL_STREAM = 1  # meta-val batches draw from their own generator stream (seeding.py)
LEARNED_ARTIFACT = "meta/learned.npz"
LEARNED_FIGURE = "plots/meta_learned.png"


def classifier_head(model: nn.Module) -> tuple[str, nn.Linear]:
    """The final fully-connected layer (the reference's ``model.fc``): timm's
    ``get_classifier()`` where the model has one, else the last ``nn.Linear``."""
    modules = dict(model.named_modules())
    if hasattr(model, "get_classifier"):
        head = model.get_classifier()
        name = next((n for n, m in modules.items() if m is head), None)
    else:
        linear = [n for n, m in modules.items() if isinstance(m, nn.Linear)]
        name = linear[-1] if linear else None
    head = modules.get(name) if name is not None else None
    if not isinstance(head, nn.Linear) or head.bias is None:
        raise CalibexpError(
            "meta-calibration steps the final layer ahead, an nn.Linear with a bias, which "
            f"{type(model).__name__} does not end with; use another model.name"
        )
    return name, head


def meta_val_batches(
    loader: DeviceLoader, generator: torch.Generator, replay: str
) -> Iterator[tuple[torch.Tensor, ...]]:
    """An endless stream of meta-val batches for one epoch: ``cycle`` replays the epoch's first
    shuffled pass (itertools.cycle caches it, as the reference's ``zip(train, cycle(meta))``
    does); ``reshuffle`` draws a new shuffled pass whenever one ends."""
    if replay == "cycle":
        return itertools.cycle(loader.batches(generator))
    return itertools.chain.from_iterable(loader.batches(generator) for _ in itertools.count())


BATCHNORM_STATISTICS = ("running_mean", "running_var", "num_batches_tracked")


def batchnorm_copies(model: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of every BatchNorm running statistic: handed to a forward in their place, they
    take its update and the model's own stay as they were (``meta.bn_from_meta_val: false``)."""
    return {
        name: buffer.clone()
        for name, buffer in model.named_buffers()
        if name.rsplit(".", 1)[-1] in BATCHNORM_STATISTICS
    }


class MetaStep(PlainStep):
    def __init__(
        self,
        model: nn.Module,
        loss_fn: CalibrationLoss,
        optimizer: torch.optim.Optimizer,
        learner: MetaLearner,
        meta_val: DeviceLoader,
        cfg: MetaConfig,
        *,
        seed: int,
        seen_domains: tuple[str, ...] = (),
        domain_rows: torch.Tensor | None = None,
        autocast: contextlib.AbstractContextManager,
        grad_clip: float | None,
        summed: bool,
    ) -> None:
        super().__init__(
            model, loss_fn, optimizer, autocast=autocast, grad_clip=grad_clip, summed=summed
        )
        self.learner, self.meta_val, self.cfg, self.seed = learner, meta_val, cfg, seed
        # With meta.per_domain, the learner's rows are the seen domains, in order; a sample's
        # domain index (into the dataset's domain_names) becomes its row by ``domain_rows``.
        self.seen_domains, self.domain_rows = seen_domains, domain_rows
        self.head_name, head = classifier_head(model)
        self.head = [head.weight, head.bias]
        self.meta_optimizer = torch.optim.Adam(
            learner.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
        )
        self.lr = 0.0
        self.batches: Iterator[tuple[torch.Tensor, ...]] = iter(())
        self.sums: dict[str, torch.Tensor] = {}
        self.steps = 0

    def begin_epoch(self, epoch: int, lr: float) -> None:
        self.lr = lr  # the reference's current_LR, read once at the epoch's start
        generator = epoch_generator(self.seed, epoch, self.meta_val.images.device, META_VAL_STREAM)
        self.batches = meta_val_batches(self.meta_val, generator, self.cfg.replay)
        self.sums, self.steps = {}, 0

    def training_loss(
        self,
        logits: torch.Tensor,
        targets: torch.Tensor,
        domains: torch.Tensor | None,
        hyper: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """L(λ): the learner's loss summed over the batch (``summed``), or its batch mean, at
        the learner's hyper-parameters or at ``hyper``. The look-ahead and the model's step use
        the same one; the reference's ``loss_mean`` path, a summed look-ahead before a mean
        step, is not repeated."""
        args = (logits, targets, domains, self.head, partial(summed_loss, self.loss_fn))
        total = self.learner(*args) if hyper is None else functional_call(self.learner, hyper, args)
        return total if self.summed else total / len(targets)

    def meta_objective(
        self, logits: torch.Tensor, targets: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        calibration = dece(logits, targets, self.cfg.bins, self.cfg.t_a, self.cfg.t_b)
        ce = F.cross_entropy(logits, targets)
        fit = ce if self.cfg.objective == "ce_dece" else torch.zeros_like(ce)
        return {"loss": fit + self.cfg.beta * calibration, "ce": ce, "dece": calibration}

    def look_ahead_objective(
        self,
        logits: torch.Tensor,
        targets: torch.Tensor,
        domains: torch.Tensor | None,
        meta_batch: tuple[torch.Tensor, ...],
    ) -> dict[str, torch.Tensor]:
        """Steps 1-4: the meta-objective on ``meta_batch`` after the final layer's look-ahead
        step on the training loss of ``logits``, differentiable in the hyper-parameters. Its
        graph holds copies of them, so it outlives their update in step 5 (the leak's backward
        runs after it)."""
        copies = {name: p.clone() for name, p in self.learner.named_parameters()}
        loss = self.training_loss(logits, targets, domains, copies)
        grads = torch.autograd.grad(loss, self.head, create_graph=True)
        fast = {
            f"{self.head_name}.{name}": p - self.lr * g
            for name, p, g in zip(("weight", "bias"), self.head, grads)
        }
        if not self.cfg.bn_from_meta_val:
            fast.update(batchnorm_copies(self.model))
        meta_inputs, meta_targets, *_ = meta_batch
        with self.autocast:
            meta_logits = full_precision(functional_call(self.model, fast, (meta_inputs,)))
        return self.meta_objective(meta_logits, meta_targets)

    def meta_update(self, meta_loss: torch.Tensor) -> None:
        """Step 5: Adam on the hyper-parameters with ∂M/∂λ, then their clamp. ∂M/∂λ alone: it
        runs back through the looked-ahead layer, not through the network."""
        hyper = list(self.learner.parameters())
        grads = torch.autograd.grad(meta_loss, hyper, retain_graph=self.cfg.leak_to_model)
        for p, g in zip(hyper, grads):
            p.grad = g
        self.meta_optimizer.step()
        self.learner.clamp_()

    def step(
        self, inputs: torch.Tensor, targets: torch.Tensor, *context: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        domains = self.domain_rows[context[0]] if context and self.domain_rows is not None else None
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast:
            logits = full_precision(self.model(inputs))
        objective = self.look_ahead_objective(logits, targets, domains, next(self.batches))
        self.meta_update(objective["loss"])
        # 6. the model's step on the loss under the updated hyper-parameters; with the leak,
        # also on ∂M/∂θ, which the reference leaves in the model's gradients by its meta-loss
        # backward: here one backward of both, one pass through the network's two graphs
        # instead of three (benchmarks/meta_step.py), the same gradients.
        loss = self.training_loss(logits, targets, domains)
        (loss + objective["loss"] if self.cfg.leak_to_model else loss).backward()
        self.clip_and_step()
        for key, value in objective.items():
            self.sums[key] = self.sums.get(key, 0) + value.detach()
        self.steps += 1
        return logits, (loss.detach() / len(targets) if self.summed else loss.detach())

    def end_epoch(self) -> dict[str, float]:
        values = {f"meta/{k}": v / self.steps for k, v in self.sums.items()}
        values.update({f"meta/{k}": v for k, v in self.learner.summary().items()})
        numbers = torch.stack(list(values.values())).tolist()  # one device->host transfer
        return dict(zip(values, numbers))

    def state_dict(self) -> dict[str, Any]:
        return {"learner": self.learner.state_dict(), "optimizer": self.meta_optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.learner.load_state_dict(state["learner"])
        self.meta_optimizer.load_state_dict(state["optimizer"])

    def artifacts(self) -> dict[str, dict[str, np.ndarray]]:
        return {LEARNED_ARTIFACT: self.learner.learned()}

    def figures(self) -> dict[str, Callable[[], Any]]:
        from calibexp.plots.meta import plot_learned

        return {LEARNED_FIGURE: partial(plot_learned, self.learner.learned(), self.seen_domains)}


def full_precision(logits: torch.Tensor) -> torch.Tensor:
    """float32 logits from autocast's bf16 (as the engine's), float64 kept (the
    finite-difference tests of the hypergradient run in float64)."""
    return logits.to(torch.promote_types(logits.dtype, torch.float32))


def summed_loss(
    loss_fn: CalibrationLoss, logits: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """The configured loss summed over the batch (its batch mean times B)."""
    return loss_fn(logits, targets) * len(targets)
