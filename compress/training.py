"""The one training loop, shared by the ``train`` and ``finetune`` stages."""
from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from compress.context import RunContext
from compress.data import Dataset, iter_batches
from compress.errors import InputError, TrainingError
from compress.recipe.base import FinetuneConfig, TrainConfig

_REPORT_EVERY = 10  # steps between progress updates (each costs a device sync)


class TrainHook:
    """Keeps a compression invariant during training; override what you need.

    A hook that sets ``stop`` ends training after the current step (e.g. a budget search).
    """

    stop: bool = False

    def on_start(self, model: nn.Module) -> None:
        """Training is about to begin (e.g. put weights on their grid)."""

    def on_end(self, model: nn.Module) -> None:
        """Training has ended: leave the model in its final, invariant-respecting state."""

    def after_backward(self, model: nn.Module) -> None:
        """Edit gradients before the optimizer step (e.g. zero pruned ones)."""

    def after_step(self, model: nn.Module, step: int, total: int) -> None:
        """Repair weights after the step (re-apply masks, project to a grid)."""

    def penalty(self, model: nn.Module) -> torch.Tensor | None:
        """A term added to this step's training loss (e.g. a sparsifying prior's KL); None: nothing."""
        return None


@dataclass(frozen=True)
class FitResult:
    epochs: int
    steps: int
    seconds: float
    samples_per_s: float
    loss: float  # mean over the last reporting window
    accuracy: float  # training accuracy (%) over the same window


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
    return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def epoch_steps(data: Dataset, cfg: TrainConfig) -> int:
    """Optimizer steps of one epoch over ``data.train`` at ``cfg.batch_size`` (the last batch may be short)."""
    return math.ceil(len(data.train) / cfg.batch_size)


def total_steps(cfg: TrainConfig, steps_per_epoch: int) -> int:
    """Optimizer steps of a training run: its epochs, or ``max_steps`` if that comes first."""
    total = cfg.epochs * steps_per_epoch
    return min(total, cfg.max_steps) if cfg.max_steps is not None else total


def make_schedule(opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    total = max(1, total_steps(cfg, steps_per_epoch))
    if cfg.schedule == "cosine":
        def factor(step: int) -> float:
            return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
    elif cfg.schedule == "step":
        def factor(step: int) -> float:
            return cfg.gamma ** (step // (cfg.step_epochs * steps_per_epoch))
    else:
        def factor(step: int) -> float:
            return 1.0
    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def distillation_loss(logits: torch.Tensor, teacher: nn.Module, x: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton et al.'s soft-target loss: T² · KL(teacher ‖ student) at temperature T."""
    with torch.no_grad():
        target = F.log_softmax(teacher(x) / temperature, dim=1)
    student = F.log_softmax(logits / temperature, dim=1)
    return F.kl_div(student, target, log_target=True, reduction="batchmean") * temperature ** 2


def _check_finite(loss: float, step: int, label: str) -> None:
    if not math.isfinite(loss):
        raise TrainingError(f"{label}: the loss became {loss} by step {step}; training diverged and no model "
                            "is written", "lower the learning rate (lr), or check the data and the model")


class _Meter:
    """Loss and accuracy over the current reporting window, kept on the device (one sync per report)."""

    def __init__(self, ctx: RunContext, label: str) -> None:
        self.ctx, self.label = ctx, label
        self.loss = torch.zeros((), device=ctx.device)
        self.correct = torch.zeros((), dtype=torch.int64, device=ctx.device)
        self.window, self.seen, self.start = 0, 0, time.perf_counter()
        self.last = (float("nan"), float("nan"))

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        self.loss += loss.detach() * len(y)
        self.correct += (logits.detach().argmax(1) == y).sum()
        self.seen, self.window = self.seen + len(y), self.window + len(y)

    def report(self, step: int, advance: int) -> None:
        """Check the window's loss is finite, hand it to the progress sink, start a new window.

        In a job the window is summed over ranks first, so every rank sees — and stops on — the same figure.
        """
        loss, correct, window = float(self.loss), float(self.correct), float(self.window)
        if self.ctx.dist is not None:
            loss, correct, window = self.ctx.dist.sum(loss, correct, window)
        if not window:
            return
        self.last = (loss / window, 100.0 * correct / window)
        _check_finite(self.last[0], step, self.label)
        self.ctx.progress.update(advance, loss=self.last[0], acc=self.last[1],
                                 samples_per_s=self.seen / (time.perf_counter() - self.start))
        self.loss.zero_()
        self.correct.zero_()
        self.window = 0


def check_precision(precision: str, device: torch.device, where: str = "train") -> None:
    """fp16 training needs CUDA's gradient scaler; bf16 autocasts on CPU and CUDA alike."""
    if precision == "fp16" and device.type != "cuda":
        raise InputError(f"{where}.precision: fp16 needs a CUDA device (its gradient scaler), not {device.type}",
                         "use precision: bf16 (or fp32) here")


class _Precision:
    """Mixed precision: forward passes under autocast; with fp16 a gradient scaler, unscaled before the
    hooks so that masks and centroid updates see true gradients."""

    def __init__(self, precision: str, device: torch.device) -> None:
        check_precision(precision, device)
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        self.device = device
        self.scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None)

    def backward(self, loss: torch.Tensor, opt: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            loss.backward()
            return
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(opt)

    def step(self, opt: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            opt.step()
            return
        self.scaler.step(opt)  # skipped when the unscaled gradients hold inf/nan (the scale then drops)
        self.scaler.update()


def _parallel(model: nn.Module, ctx: RunContext) -> nn.Module:
    """``model`` itself, or in a job wrapped in DistributedDataParallel (gradients all-reduced in backward,
    so hooks that edit gradients or weights afterwards act identically on every rank)."""
    if ctx.dist is None:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


@dataclass
class _Stepper:
    """What one optimizer step needs besides its batch."""

    model: nn.Module
    net: nn.Module  # the model, or its DistributedDataParallel wrapper
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    amp: _Precision
    cfg: TrainConfig
    hooks: Sequence[TrainHook]
    teacher: nn.Module | None
    total: int

    def __call__(self, x: torch.Tensor, y: torch.Tensor, weight: float, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward, backward (``weight`` scales this rank's loss), hooks, optimizer and schedule step."""
        distill = self.cfg.distill if isinstance(self.cfg, FinetuneConfig) else 0.0
        self.opt.zero_grad(set_to_none=True)
        with self.amp.autocast():
            logits = self.net(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=self.cfg.label_smoothing)
            if distill > 0 and self.teacher is not None:
                soft = distillation_loss(logits.float(), self.teacher, x, self.cfg.temperature)
                loss = (1 - distill) * loss + distill * soft
        total = loss  # penalties outside autocast: a KL summed over every weight wants fp32
        for hook in self.hooks:
            extra = hook.penalty(self.model)
            total = total if extra is None else total + extra
        self.amp.backward(total * weight if weight != 1.0 else total, self.opt)
        for hook in self.hooks:
            hook.after_backward(self.model)
        self.amp.step(self.opt)
        self.sched.step()
        for hook in self.hooks:
            hook.after_step(self.model, step, self.total)
        return loss, logits


def _channels_last(model: nn.Module, cfg: TrainConfig, device: torch.device) -> bool:
    """Whether this training runs in channels-last format: asked for, or on CUDA for a model with 2-D
    convolutions (tensor cores read NHWC without transposes)."""
    if cfg.channels_last == "auto":
        return device.type == "cuda" and any(isinstance(m, nn.Conv2d) for m in model.modules())
    return bool(cfg.channels_last)


def _batches(data: Dataset, cfg: TrainConfig, ctx: RunContext, gen: torch.Generator,
             nhwc: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor, float]]:
    """One epoch of shuffled batches on the device, with the weight of this rank's share in a job (so the
    all-reduced mean of the weighted losses is the global batch's mean)."""
    part = (ctx.dist.rank, ctx.dist.world) if ctx.dist is not None else None
    batches = iter_batches(data.train, cfg.batch_size, shuffle=True, generator=gen, augment=data.augment, part=part)
    for i, (x, y) in enumerate(batches):
        weight = 1.0
        if part is not None:
            size = min(cfg.batch_size, len(data.train) - i * cfg.batch_size)
            weight = len(y) * part[1] / size if len(y) < size else 1.0
        x = x.to(ctx.device, non_blocking=True)
        if nhwc and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        yield x, y.to(ctx.device, non_blocking=True), weight


def fit(model: nn.Module, data: Dataset, cfg: TrainConfig, ctx: RunContext, *,
        label: str = "train", hooks: Sequence[TrainHook] = (), teacher: nn.Module | None = None,
        shuffle: torch.Generator | None = None) -> FitResult:
    """Train ``model`` in place for ``cfg.epochs`` (or ``cfg.max_steps``) on ``data.train``; hooks keep
    invariants. With a fine-tuning ``cfg.distill`` > 0, ``teacher``'s softened outputs join the labels.
    ``shuffle``: the generator of the batch order (default: one seeded from the run's seed), passed by a
    caller that trains in pieces shorter than an epoch so that each piece sees other samples."""
    if isinstance(cfg, FinetuneConfig) and cfg.distill > 0 and teacher is None:
        raise InputError("finetune.distill needs the uncompressed model as teacher, and there is none here",
                         "use distill in a finetune that follows a prune or quantize stage")
    amp = _Precision(cfg.precision, ctx.device)
    nhwc = _channels_last(model, cfg, ctx.device)
    model.to(ctx.device).train()
    if nhwc:
        model.to(memory_format=torch.channels_last)
    opt = make_optimizer(model, cfg)
    steps_per_epoch = epoch_steps(data, cfg)
    total, step, gen = total_steps(cfg, steps_per_epoch), 0, shuffle or ctx.generator(offset=1)
    stepper = _Stepper(model, _parallel(model, ctx), opt, make_schedule(opt, cfg, steps_per_epoch), amp, cfg,
                       hooks, teacher, total)
    for hook in hooks:
        hook.on_start(model)
    ctx.progress.start(label, total)
    meter = _Meter(ctx, label)
    done = False
    for _ in range(cfg.epochs):
        for x, y, weight in _batches(data, cfg, ctx, gen, nhwc):
            step += 1
            loss, logits = stepper(x, y, weight, step)
            meter.add(loss, logits, y)
            if step % _REPORT_EVERY == 0 or step == total:
                meter.report(step, _REPORT_EVERY if step % _REPORT_EVERY == 0 else step % _REPORT_EVERY)
            done = step >= total or any(h.stop for h in hooks)
            if done:
                break
        if done:
            break
    meter.report(step, 0)  # a search hook may stop mid-window: its loss is checked too
    seconds = time.perf_counter() - meter.start
    if nhwc:  # masks, encodings and exports expect the usual layout
        model.to(memory_format=torch.contiguous_format)
    for hook in hooks:
        hook.on_end(model)
    ctx.progress.stop()
    model.eval()
    return FitResult(cfg.epochs, step, seconds, meter.seen / max(seconds, 1e-9), *meter.last)
