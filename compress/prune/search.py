"""The pruning rate as a knob of the budget search driver (:mod:`compress.analysis.search`).

probe: masks at a rate, evaluation only. climb: one gradual-pruning fine-tune rising from the
probe's rate, checking accuracy just before each mask update; it stops once the budget fails
three times in a row and keeps the last state inside it. tune: short fine-tunes (half the
epochs) from the kept state at rates between it and the highest rate the climb reached.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn as nn

from compress.analysis.search import Candidate, Knob, search
from compress.layers import count_nonzero
from compress.method import Budget, Outcome, Workspace
from compress.prune.masks import MaskHook
from compress.prune.schedules import GradualHook, MaskFn
from compress.recipe.base import FinetuneConfig
from compress.recipe.methods import MAX_RATE, UnstructuredPrune
from compress.report import Trial
from compress.training import fit

_MISSES = 3  # consecutive failed checks that end the climb
_CHECKS = 8  # the fewest budget checks a climb gets, however short its fine-tune
Weights = dict[str, torch.Tensor]


@dataclass
class Kept:
    """A candidate's weights and keep-masks (empty masks: dense)."""

    weights: Weights
    masks: Weights


def _snapshot(model: nn.Module) -> Weights:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def highest_rate(cfg: UnstructuredPrune) -> float:
    """The highest overall rate a search may try: global scope cannot pass its per-layer ceiling."""
    return min(MAX_RATE, cfg.max_layer_rate) if cfg.scope == "global" else MAX_RATE


class ClimbHook(GradualHook):
    """Gradual pruning from ``start`` towards the cap that checks the budget before each update."""

    def __init__(self, model: nn.Module, ws: Workspace, params: dict[str, nn.Parameter], mask_fn: MaskFn,
                 start: float, cfg: UnstructuredPrune, budget: Budget, trials: list[Trial]) -> None:
        super().__init__(params, mask_fn, highest_rate(cfg), cfg.update_every, cfg.ramp)
        self.model, self.ws, self.budget, self.trials, self.start = model, ws, budget, trials, start
        self.best: Candidate[Kept] | None = None
        self.misses, self.clock = 0, time.perf_counter()

    def after_step(self, model: nn.Module, step: int, total: int) -> None:
        if step == 1:  # a short fine-tune still gets ~8 checks: update_every may exceed all its steps
            self.every = max(1, min(self.every, total // _CHECKS))
        if step % self.every == 0 and self.rate > 0:
            self.apply()  # this step's optimizer update may have moved pruned weights (momentum)
            self._check(model)
        if not self.stop:
            super().after_step(model, step, total)

    def set_rate(self, rate: float, step: int) -> None:
        super().set_rate(max(rate, self.start), step)

    def _check(self, model: nn.Module) -> None:
        acc = self.ws.accuracy(model, self.budget.split)
        model.train()
        met = acc >= self.budget.floor
        now = time.perf_counter()
        self.trials.append(Trial("climb", round(self.rate, 3), acc, count_nonzero(self.params.values()), met,
                                 round(now - self.clock, 3)))
        self.clock = now
        if met:
            masks = {n: m.clone() for n, m in self._masks()}
            self.best, self.misses = Candidate(self.rate, Kept(_snapshot(model), masks)), 0
        else:
            self.misses += 1
            self.stop = self.misses >= _MISSES

    def _masks(self) -> list[tuple[str, torch.Tensor]]:
        names = {id(p): n for n, p in self.params.items()}
        return [(names[id(p)], m) for p, m in self.pairs]


class RateRefiner:
    """The fine-tuning phases of the rate search (see the module docstring)."""

    def __init__(self, model: nn.Module, cfg: UnstructuredPrune, ws: Workspace, params: dict[str, nn.Parameter],
                 mask_fn: MaskFn, budget: Budget) -> None:
        self.model, self.cfg, self.ws, self.params, self.mask_fn, self.budget = model, cfg, ws, params, mask_fn, budget
        self.ft: FinetuneConfig = cfg.finetune or FinetuneConfig()
        self.short = self.ft.model_copy(update={"epochs": max(1, self.ft.epochs // 2)})
        self.dense = _snapshot(model)

    def climb(self, start: float, trials: list[Trial]) -> tuple[Candidate[Kept] | None, float]:
        hook = ClimbHook(self.model, self.ws, self.params, self.mask_fn, start, self.cfg, self.budget, trials)
        hook.set_rate(start, 0)
        fit(self.model, self.ws.data, self.ft, self.ws.run, label="budget search: climb",
            hooks=[*self.ws.hooks, hook], teacher=self.ws.teacher)
        return hook.best, hook.rate

    def start(self, level: float) -> Candidate[Kept]:
        return Candidate(level, Kept(self.dense, {}))

    def tune(self, level: float, base: Candidate[Kept]) -> tuple[Trial, Candidate[Kept]]:
        begin = time.perf_counter()
        self.model.load_state_dict(base.state.weights)
        hook = MaskHook(self.params, self.mask_fn(level))
        hook.apply()
        fit(self.model, self.ws.data, self.short, self.ws.run, label=f"budget search: {level:.1f}%",
            hooks=[*self.ws.hooks, hook], teacher=self.ws.teacher)
        acc = self.ws.accuracy(self.model, self.budget.split)
        trial = Trial("bisect", round(level, 3), acc, count_nonzero(self.params.values()), acc >= self.budget.floor,
                      round(time.perf_counter() - begin, 3))
        masks = dict(zip(self.params, (m for _, m in hook.pairs), strict=True))
        return trial, Candidate(level, Kept(_snapshot(self.model), masks))


def search_rate(model: nn.Module, cfg: UnstructuredPrune, ws: Workspace, params: dict[str, nn.Parameter],
                mask_fn: MaskFn, budget: Budget, out: Outcome) -> MaskHook:
    """The highest rate inside ``budget``; the chosen model is left in place, its masks returned."""
    dense = _snapshot(model)

    def probe(rate: float) -> Trial:
        start = time.perf_counter()
        MaskHook(params, mask_fn(rate)).apply()
        acc = ws.accuracy(model, budget.split)
        trial = Trial("probe", round(rate, 3), acc, count_nonzero(params.values()), acc >= budget.floor,
                      round(time.perf_counter() - start, 3))
        model.load_state_dict(dense)
        return trial

    result = search(Knob(cfg.min_rate, highest_rate(cfg), probe, refiner=RateRefiner(model, cfg, ws, params, mask_fn, budget)),
                    budget)
    assert result.candidate is not None
    model.load_state_dict(result.candidate.state.weights)
    hook = MaskHook(params, result.candidate.state.masks)
    hook.apply()
    out.trials.extend(result.trials)
    out.notes.append(f"budget search: {len(result.trials)} trials, {sum(t.seconds or 0 for t in result.trials):.1f} s, "
                     f"chose rate {result.candidate.level:.2f}% (probe without fine-tuning: {result.probed:.2f}%)")
    return hook
