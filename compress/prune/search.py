"""Highest sparsity within an accuracy budget, spending fine-tuning only where it decides.

1. probe: bisection over the rate with evaluation only (seconds) — the rate the model takes
   without any fine-tuning;
2. climb: one gradual-pruning fine-tune from there upwards, checking accuracy just before each
   mask update; it stops once the budget fails three times in a row and keeps the last state
   inside it (and the highest rate it reached);
3. bisect: between those two rates, short fine-tunes (half the epochs) from the kept state
   decide; the highest rate that ends inside the budget wins. If none does, the climb's kept
   state (measured inside the budget) is the result.
"""
from __future__ import annotations

import time
from dataclasses import asdict
from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from compress.evaluate import evaluate
from compress.layers import count_nonzero
from compress.prune.masks import MAX_RATE, MaskHook
from compress.prune.schedules import GradualHook, MaskFn
from compress.recipe.schema import FinetuneConfig, PruneConfig
from compress.report import Trial
from compress.training import fit

if TYPE_CHECKING:
    from compress.pipeline import Budget, PipelineState

_PROBE_STEPS = 7
_BISECT_STEPS = 3
_MISSES = 3  # consecutive failed checks that end the climb


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _accuracy(state: PipelineState, budget: Budget) -> float:
    return evaluate(state.model, state.data.split(budget.split), state.eval_batch_size, state.ctx.device).accuracy


def probe(state: PipelineState, params: dict[str, nn.Parameter], mask_fn: MaskFn, budget: Budget,
          low: float, trials: list[Trial]) -> float:
    """Bisection without fine-tuning: the highest rate ≥ ``low`` still inside the budget (else ``low``)."""
    dense = _snapshot(state.model)
    lo, hi = low, MAX_RATE
    for _ in range(_PROBE_STEPS):
        mid = (lo + hi) / 2
        start = time.perf_counter()
        MaskHook(params, mask_fn(mid)).apply()
        acc = _accuracy(state, budget)
        trials.append(Trial("probe", round(mid, 3), acc, count_nonzero(params.values()), acc >= budget.floor,
                            round(time.perf_counter() - start, 3)))
        state.model.load_state_dict(dense)
        lo, hi = (mid, hi) if acc >= budget.floor else (lo, mid)
    return lo


class ClimbHook(GradualHook):
    """Gradual pruning from ``start`` towards the cap that checks the budget before each update."""

    def __init__(self, state: PipelineState, params: dict[str, nn.Parameter], mask_fn: MaskFn, start: float,
                 cfg: PruneConfig, budget: Budget, trials: list[Trial]) -> None:
        super().__init__(params, mask_fn, MAX_RATE, cfg.update_every, cfg.ramp)
        self.state, self.budget, self.trials, self.start = state, budget, trials, start
        self.best: tuple[float, dict[str, torch.Tensor], dict[str, torch.Tensor]] | None = None
        self.misses, self.clock = 0, time.perf_counter()

    def after_step(self, model: nn.Module, step: int, total: int) -> None:
        if step % self.every == 0 and self.rate > 0:
            self.apply()  # this step's optimizer update may have moved pruned weights (momentum)
            self._check(model)
        if not self.stop:
            super().after_step(model, step, total)

    def set_rate(self, rate: float, step: int) -> None:
        super().set_rate(max(rate, self.start), step)

    def _check(self, model: nn.Module) -> None:
        acc = _accuracy(self.state, self.budget)
        model.train()
        met = acc >= self.budget.floor
        now = time.perf_counter()
        self.trials.append(Trial("climb", round(self.rate, 3), acc, count_nonzero(self.params.values()), met,
                                 round(now - self.clock, 3)))
        self.clock = now
        if met:
            self.best, self.misses = (self.rate, _snapshot(model), {n: m.clone() for n, m in self._masks()}), 0
        else:
            self.misses += 1
            self.stop = self.misses >= _MISSES

    def _masks(self) -> list[tuple[str, torch.Tensor]]:
        names = {id(p): n for n, p in self.params.items()}
        return [(names[id(p)], m) for p, m in self.pairs]


def search(state: PipelineState, cfg: PruneConfig, params: dict[str, nn.Parameter], mask_fn: MaskFn,
           budget: Budget) -> MaskHook:
    """Run probe → climb → bisect; leave the chosen model in place and return its mask hook."""
    trials: list[Trial] = []
    ft = cfg.finetune or FinetuneConfig()
    dense = _snapshot(state.model)
    start_rate = probe(state, params, mask_fn, budget, cfg.min_rate, trials)
    climb = ClimbHook(state, params, mask_fn, start_rate, cfg, budget, trials)
    climb.set_rate(start_rate, 0)
    fit(state.model, state.data, ft, state.ctx, label="budget search: climb", hooks=[*state.hooks, climb],
        teacher=state.teacher)
    short = ft.model_copy(update={"epochs": max(1, ft.epochs // 2)})
    if climb.best is None:  # nothing was inside the budget: least damage is the lowest allowed rate, fine-tuned
        state.model.load_state_dict(dense)
        rate, weights, masks = _bisect(state, params, mask_fn, budget, (start_rate, dense, {}), start_rate,
                                       short, trials, force=True)
    else:
        rate, weights, masks = _bisect(state, params, mask_fn, budget, climb.best, climb.rate, short, trials)
    state.model.load_state_dict(weights)
    hook = MaskHook(params, masks)
    hook.apply()
    state.search.extend(asdict(t) for t in trials)
    state.notes.append(f"budget search: {len(trials)} trials, {sum(t.seconds for t in trials):.1f} s, "
                       f"chose rate {rate:.2f}% (probe without fine-tuning: {start_rate:.2f}%)")
    return hook


Kept = tuple[float, dict[str, torch.Tensor], dict[str, torch.Tensor]]


def _bisect(state: PipelineState, params: dict[str, nn.Parameter], mask_fn: MaskFn, budget: Budget,
            kept: Kept, top: float, ft: FinetuneConfig, trials: list[Trial], force: bool = False) -> Kept:
    """Short fine-tunes from the kept state at rates between it and ``top``; the best that passes wins.

    ``force``: one trial at the kept rate itself, whose result is kept even outside the budget.
    """
    lo, hi = kept[0], top
    for _ in range(1 if force else _BISECT_STEPS if hi - lo > 0.5 else 0):
        mid = lo if force else (lo + hi) / 2
        begin = time.perf_counter()
        state.model.load_state_dict(kept[1])
        hook = MaskHook(params, mask_fn(mid))
        hook.apply()
        fit(state.model, state.data, ft, state.ctx, label=f"budget search: {mid:.1f}%", hooks=[*state.hooks, hook],
            teacher=state.teacher)
        acc = _accuracy(state, budget)
        met = acc >= budget.floor
        trials.append(Trial("bisect", round(mid, 3), acc, count_nonzero(params.values()), met, round(time.perf_counter() - begin, 3)))
        if met or force:
            kept = (mid, _snapshot(state.model), dict(zip(params, (m for _, m in hook.pairs), strict=True)))
            lo = mid
        else:
            hi = mid
    return kept
