"""The narrow contract between the pipeline and a compression method.

A method handler is ``handler(model, config, workspace) -> Outcome``: it changes ``model`` in
place, reads what it may use from the :class:`Workspace` (data, the run context, invariants
earlier stages left, the accuracy budget) and returns what it did as an :class:`Outcome`. It
never sees the pipeline's own state; the pipeline merges outcomes.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch.nn as nn

from compress.artifact import LinearGrid
from compress.budget import Budget
from compress.context import RunContext
from compress.data import Dataset, Samples
from compress.evaluate import evaluate
from compress.recipe.methods import MethodConfig, QuantizeBase
from compress.report import Trial
from compress.training import TrainHook


@dataclass(frozen=True)
class Workspace:
    """What a method may use besides the model it changes."""

    data: Dataset
    run: RunContext
    eval_batch_size: int = 1000
    hooks: tuple[TrainHook, ...] = ()  # invariants of earlier stages, kept during any training a method does
    grids: Mapping[str, LinearGrid] = field(default_factory=lambda: MappingProxyType({}))  # weights already on grids
    teacher: nn.Module | None = None  # the model before compression, for fine-tunings that distill
    budget: Budget | None = None  # set when the recipe has an accuracy budget
    int8_execution: bool = False  # the final model will run int8 (a speed search measures that runtime)

    def split(self, name: str) -> Samples:
        return self.data.split(name)

    def accuracy(self, model: nn.Module, split: str) -> float:
        """Top-1 (%) of ``model`` on ``split`` — its first ``data.calibration_samples`` when set (a search's
        check on large data); leaves the model in eval mode."""
        samples = self.data.split(split)
        if self.data.calibration_samples is not None:
            samples = samples.first(self.data.calibration_samples)
        return evaluate(model, samples, self.eval_batch_size, self.run.device, self.run.dist).accuracy


@dataclass
class Outcome:
    """What a method did, for the pipeline to keep and report."""

    hooks: list[TrainHook] = field(default_factory=list)  # invariants later training must keep
    grids: dict[str, LinearGrid] = field(default_factory=dict)  # weights now on linear grids
    bits: dict[str, float] = field(default_factory=dict)  # weight name → stored bits
    notes: list[str] = field(default_factory=list)
    trials: list[Trial] = field(default_factory=list)  # a budget search's trace
    int8: QuantizeBase | None = None  # int8 execution asked for: converted after the last training
    extra: dict[str, Any] = field(default_factory=dict)


Handler = Callable[[nn.Module, Any, Workspace], Outcome]
"""``handler(model, config, workspace)``; the config's class picks the handler (:mod:`compress.methods`)."""

__all__ = ["Budget", "Handler", "MethodConfig", "Outcome", "Workspace"]
