"""Channel pruning without a rate: the search driver walks a path of per-group allocations.

The path (``channel_cost``) goes from the dense model towards every group at its last share.
Under an accuracy budget the knob is the position on it: probe positions with evaluation only,
then fine-tune a few between the probe's answer and the end (each trial on a copy of the dense
model: channel surgery cannot be undone). With a speed target the answer is the first position
at least that much cheaper, fine-tuned once. The chosen model is rebuilt on the original module
(the same counts give the same channels) and finishes its fine-tuning.
"""
from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn

from compress.analysis.search import Candidate, Knob, lowest, search
from compress.budget import Budget
from compress.method import Outcome, Workspace
from compress.prune import channel_cost, structured
from compress.prune.channel_plan import GroupPlan
from compress.recipe.base import FinetuneConfig
from compress.recipe.methods import ChannelPrune
from compress.report import Trial
from compress.training import fit

Cost = Callable[[nn.Module], float]


@dataclass
class Walk:
    """What every trial of one search needs: the dense model, its groups, the path and how to cut."""

    dense: nn.Module
    cfg: ChannelPrune
    ws: Workspace
    example: torch.Tensor
    groups: list[GroupPlan]
    path: list[channel_cost.Shares]

    def cut(self, model: nn.Module, level: float) -> nn.Module:
        """``model`` (a copy of the dense one) pruned to position ``level`` of the path."""
        structured.prune_counts(model, self.cfg, self.ws, self.example,
                                channel_cost.counts(self.groups, self.path[int(level)]))
        return model

    def trial(self, phase: str, level: float, model: nn.Module, accuracy: float | None, met: bool, start: float,
              cost: float | None = None) -> Trial:
        share = channel_cost.removed_share(self.groups, self.path[int(level)])
        return Trial(phase, round(share, 3), accuracy, sum(p.numel() for p in model.parameters()), met,
                     round(time.perf_counter() - start, 3), cost=cost)


class TuneRefiner:
    """Fine-tuned trials (half the epochs) on copies; no climb: surgery cannot happen inside training."""

    def __init__(self, walk: Walk, budget: Budget, short: FinetuneConfig) -> None:
        self.walk, self.budget, self.short = walk, budget, short

    def climb(self, start: float, trials: list[Trial]) -> tuple[Candidate[nn.Module | None] | None, float]:
        return Candidate(start, None), float(len(self.walk.path) - 1)

    def start(self, level: float) -> Candidate[nn.Module | None]:
        return Candidate(level, None)

    def tune(self, level: float, base: Candidate[nn.Module | None]) -> tuple[Trial, Candidate[nn.Module | None]]:
        begin, level = time.perf_counter(), float(int(level))
        model = self.walk.cut(copy.deepcopy(self.walk.dense), level)
        ws = self.walk.ws
        fit(model, ws.data, self.short, ws.run, label=f"channel search: step {int(level)}", hooks=ws.hooks,
            teacher=ws.teacher)
        acc = ws.accuracy(model, self.budget.split)
        met = acc >= self.budget.floor
        return self.walk.trial("tune", level, model, acc, met, begin), Candidate(level, model)


def search_channels(model: nn.Module, cfg: ChannelPrune, ws: Workspace, example: torch.Tensor) -> Outcome:
    """Prune ``model`` in place to the position a budget or a speed target chooses; fine-tune it."""
    out, walk, cost = Outcome(), *_walk(model, cfg, ws, example)
    ft = cfg.finetune or FinetuneConfig()
    if cfg.target_speedup is not None:
        level, tuned = _fast_enough(walk, cost, cfg.target_speedup, out), None
    else:
        assert ws.budget is not None
        level, tuned = _within_budget(walk, ws.budget, ft, out)
    walk.cut(model, level)
    remaining = ft
    if tuned is not None:  # continue from the tuned trial: its weights, then the rest of the epochs
        model.load_state_dict(tuned.state_dict())
        remaining = ft.model_copy(update={"epochs": max(1, ft.epochs - ft.epochs // 2)})
    fit(model, ws.data, remaining, ws.run, label="channel search: final fine-tune", hooks=ws.hooks, teacher=ws.teacher)
    share = channel_cost.removed_share(walk.groups, walk.path[int(level)])
    out.notes.append(f"channel search ({cfg.allocation} allocation, objective {cfg.objective}): step {int(level)} of "
                     f"{len(walk.path) - 1}, {share:.1f}% of channels removed; " + ", ".join(
                         f"{g.name} {g.channels}→{g.channels - n}"
                         for g, n in zip(walk.groups, channel_cost.counts(walk.groups, walk.path[int(level)]).values(),
                                         strict=True)))
    return out


def _walk(model: nn.Module, cfg: ChannelPrune, ws: Workspace, example: torch.Tensor) -> tuple[Walk, Cost]:
    groups = structured.plan_groups(model, cfg.model_copy(update={"rate": 0.0}), ws, example)
    batch = ws.data.test.head(256).x
    int8 = ws.int8_execution and cfg.objective == "latency"
    cost = channel_cost.cost_function(cfg.objective, batch, len(batch), ws.run.device, int8=int8,
                                      dist=ws.run.dist)
    prune = lambda m, remove: structured.prune_counts(m, cfg, ws, example, remove)  # noqa: E731
    if cfg.allocation == "uniform":
        path = channel_cost.uniform_path(groups)
    else:
        ws.run.progress.note("channel search: measuring each group's loss and savings")
        cache = (channel_cost.cache_path(model, groups, f"{ws.run.device}/{len(batch)}/int8={int8}")
                 if cfg.objective == "latency" else None)
        path = channel_cost.path(channel_cost.measure(model, groups, prune, cost, ws, cache=cache))
    return Walk(copy.deepcopy(model).eval(), cfg, ws, example, groups, path), cost


def _within_budget(walk: Walk, budget: Budget, ft: FinetuneConfig, out: Outcome) -> tuple[float, nn.Module | None]:
    def probe(level: float) -> Trial:
        begin = time.perf_counter()
        trial = walk.cut(copy.deepcopy(walk.dense), level)
        acc = walk.ws.accuracy(trial, budget.split)
        return walk.trial("probe", level, trial, acc, acc >= budget.floor, begin)

    short = ft.model_copy(update={"epochs": max(1, ft.epochs // 2)})
    knob = Knob(0, len(walk.path), probe, discrete=True, refiner=TuneRefiner(walk, budget, short), min_gap=1)
    result = search(knob, budget)
    out.trials.extend(result.trials)
    assert result.candidate is not None
    return result.candidate.level, result.candidate.state


def _fast_enough(walk: Walk, cost: Cost, speedup: float, out: Outcome) -> float:
    """The first path position whose objective is at least ``speedup`` times below the dense model's."""
    goal = cost(walk.dense) / speedup
    last = len(walk.path) - 1

    def cheap_enough(level: float) -> bool:
        begin = time.perf_counter()
        trial = walk.cut(copy.deepcopy(walk.dense), level)
        value = cost(trial)
        out.trials.append(walk.trial("speed", level, trial, None, value <= goal, begin, cost=round(value, 4)))
        return value <= goal

    if not cheap_enough(last):
        return float(last)  # the target is out of reach: the cheapest model; the report says by how much
    return lowest(0, last, cheap_enough)
