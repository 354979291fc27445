"""The pipeline's own state: the model as stages change it and the invariants it must keep.

Only the pipeline reads and writes it; methods get a :class:`compress.method.Workspace` and
return an :class:`compress.method.Outcome` instead.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch.nn as nn

from compress.artifact import Encoded, LinearGrid, ModelSpec
from compress.context import RunContext
from compress.data import Dataset
from compress.export import Exported
from compress.method import Outcome, Workspace
from compress.recipe.methods import QuantizeBase
from compress.report import Trial
from compress.training import TrainHook


@dataclass
class PipelineState:
    """The model and what later stages must keep (masks, grids), plus what the report needs."""

    model: nn.Module
    spec: ModelSpec
    data: Dataset
    ctx: RunContext
    eval_batch_size: int
    grids: dict[str, LinearGrid] = field(default_factory=dict)
    bits: dict[str, float] = field(default_factory=dict)  # weight name → stored bits (quantized layers)
    pending_int8: QuantizeBase | None = None  # int8 execution asked for; converted after the last training
    runtime: nn.Module | None = None  # what runs for evaluation (int8), when it is not ``model`` itself
    execute: dict[str, Any] | None = None  # the runtime's plan, stored in the artifact
    search: list[Trial] = field(default_factory=list)  # the trials of budget searches
    teacher: nn.Module | None = None  # the model before compression, when a fine-tuning distills from it
    hooks: list[TrainHook] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    exports: list[Exported] = field(default_factory=list, repr=False)  # exported models, written beside the artifact
    observer: str = "minmax"  # the recipe's int8 activation observer (what an int8 export calibrates with)
    int8_planned: bool = False  # a quantize stage asks for int8 execution of the final model
    latency: tuple[int, int] = (256, 10)  # every row's latency batch and repeats: the recipe's evaluate stage's
    split: str = "test"  # every row's split: the recipe's last evaluate stage's (Δ compares like with like)
    encoded: Encoded | None = field(default=None, repr=False)  # the encoding as last measured (None: changed since)
    file_bytes: int | None = None  # size of the artifact the model came from, while unchanged

    def workspace(self, budget: Any = None) -> Workspace:
        return Workspace(self.data, self.ctx, self.eval_batch_size, tuple(self.hooks), dict(self.grids),
                         self.teacher, budget, self.int8_planned)

    def merge(self, outcome: Outcome) -> None:
        """Keep what a method did: its hooks, grids, bits, notes, trials and int8 request."""
        self.hooks.extend(outcome.hooks)
        self.grids.update(outcome.grids)
        self.bits.update(outcome.bits)
        self.notes.extend(outcome.notes)
        self.search.extend(outcome.trials)
        if outcome.int8 is not None:
            self.pending_int8 = outcome.int8
        self.changed()

    def changed(self) -> None:
        """The model's weights or shapes changed: cached measurements no longer hold."""
        self.encoded, self.file_bytes = None, None
