"""Channel pruning without a rate: the search driver walks a path of per-group allocations.

The path (``channel_cost``) goes from the dense model towards every group at its last share.
Under an accuracy budget the knob is the position on it: probe positions with evaluation only;
then climb (NetAdapt's loop): cut one step further, fine-tune for a share of the stage's epochs,
check the budget (a miss gets a second share at the same width), and again. Each cut starts from
the model the last one fine-tuned, so the model adapts as it thins, where a cut from the dense
model straight to a far position loses more than a short fine-tune wins back. With per-group
allocation each step is measured again from the climbed model (``channel_steps``) and rewrites
the path beyond it. Then short fine-tunes bisect between the last position inside and the end of
the path, each from the best model so far. With a speed target the answer is the first position
at least that much cheaper, fine-tuned once. The chosen model is rebuilt on the original module
(the same counts give the same shapes), takes the kept weights and finishes its fine-tuning.
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
from compress.prune import channel_cost, channel_steps, structured
from compress.prune.channel_plan import GroupPlan
from compress.recipe.base import FinetuneConfig
from compress.recipe.methods import ChannelPrune
from compress.report import Trial
from compress.training import epoch_steps, fit, total_steps

Cost = Callable[[nn.Module], float]
_CLIMB_STEPS = 8  # cuts of a climb from the probe's position to the end of the path
# a speed target on latency is aimed this much past: the report measures the model again, and on a CPU a latency
# moves by a few % between measurements (a cut the search took for 2.0× read 1.95× side by side, 1.85× in the rows)
_MARGIN = 0.05
_STEP_SAMPLES = 512  # a climb step's losses: every candidate is measured on the same images, so differences are steady
_TUNE_SHARE = 4  # a tune fine-tunes a quarter of the stage's steps; the chosen model then gets the rest
_MAX_PIECES = 10  # pieces of fine-tuning a climb may spend: 1.25 times the stage's (cuts and second chances)


@dataclass
class Walk:
    """What every trial of one search needs: the dense model, its groups, the path and how to cut."""

    dense: nn.Module
    cfg: ChannelPrune
    ws: Workspace
    example: torch.Tensor
    groups: list[GroupPlan]
    path: list[channel_cost.Shares]
    tables: channel_cost.Tables | None = None  # per-group allocation: a climb measures each step again
    cost: Cost | None = None
    end_cost: float | None = None  # the objective at the end of the path (measured once, when needed)

    def cut(self, model: nn.Module, level: float, since: float = 0.0) -> nn.Module:
        """``model``, pruned to position ``since`` of the path (0: the dense model), cut on to ``level``."""
        before = channel_cost.counts(self.groups, self.path[int(since)])
        after = channel_cost.counts(self.groups, self.path[int(level)])
        self.prune(model, {name: n - before[name] for name, n in after.items()})
        return model

    def prune(self, model: nn.Module, remove: dict[str, int]) -> None:
        """Remove ``remove[name]`` more channels from each group of ``model``."""
        structured.prune_counts(model, self.cfg, self.ws, self.example, remove)

    def advance(self, model: nn.Module, at: int, left: int) -> int | None:
        """The position one climb step goes on to from ``at`` with ``model`` (pruned there and fine-tuned),
        ``left`` steps before the climb's end; None at the end of the path. Per-group allocation measures the
        step from ``model`` and rewrites the path beyond ``at``; a uniform path takes equal strides."""
        last = len(self.path) - 1
        if at >= last:
            return None
        if self.tables is None or self.cost is None:
            return max(at + 1, round(at + (last - at) / left))
        if self.end_cost is None:
            self.end_cost = self.cost(self.cut(copy.deepcopy(self.dense), last))
        self.ws.run.progress.note("channel search: measuring the next cut from the climbed model")
        split = channel_cost.calibration(self.ws, _STEP_SAMPLES)
        now, steps = channel_steps.measure(model, self.groups, self.path[at], self.prune, self.cost,
                                           lambda m: channel_cost.loss(m, split, self.ws))
        chosen = channel_steps.choose(steps, (now - self.end_cost) / left)
        if not chosen:  # every group is at its last share already
            return None
        shares, stops = dict(self.path[at]), []
        for step in chosen:
            shares[step.group] = step.share
            stops.append(dict(shares))
        self.path = self.path[:at + 1] + stops + channel_cost.path(self.tables, start=shares)[1:]
        return at + len(stops)

    def trial(self, phase: str, level: float, model: nn.Module, accuracy: float | None, met: bool, start: float,
              cost: float | None = None) -> Trial:
        share = channel_cost.removed_share(self.groups, self.path[int(level)])
        return Trial(phase, round(share, 3), accuracy, sum(p.numel() for p in model.parameters()), met,
                     round(time.perf_counter() - start, 3), cost=cost)


class TuneRefiner:
    """The fine-tuning phases: a climb of cuts and short fine-tunes, then fine-tuned bisection (a quarter of
    the stage's steps each) from the best model so far; a candidate's state is its model (None: the dense one)."""

    def __init__(self, walk: Walk, budget: Budget, ft: FinetuneConfig) -> None:
        self.walk, self.budget, self.ft = walk, budget, ft
        self.steps = _stage_steps(ft, walk.ws)
        self.short = ft.model_copy(update={"max_steps": max(1, self.steps // _TUNE_SHARE)})

    def climb(self, start: float, trials: list[Trial]) -> tuple[Candidate[nn.Module | None] | None, float]:
        """Cut step by step from ``start`` towards the end of the path, an eighth of the stage's fine-tuning
        after each cut; the last model inside the budget, and the end of the path as the tune's upper end.

        A check right after a short piece is pessimistic (the cut has not healed yet), so a cut that misses
        gets one more piece at the same width; a second miss in a row ends the climb. The tune's trials
        fine-tune twice as long as a piece, so a position the climb missed may well pass one: they bisect up
        to the end of the path, not only to the climb's last cut."""
        walk, at = self.walk, int(start)
        model = copy.deepcopy(walk.dense)
        if at:
            walk.cut(model, at)
        piece = self.ft.model_copy(update={"max_steps": max(1, self.steps // _CLIMB_STEPS)})
        order = walk.ws.run.generator(offset=1)  # one batch order across the pieces: each sees new samples
        best, held, cuts = None, False, 0
        for _ in range(_MAX_PIECES):
            begin = time.perf_counter()
            if not held:
                level = walk.advance(model, at, _CLIMB_STEPS - cuts) if cuts < _CLIMB_STEPS else None
                if level is None:
                    break
                walk.cut(model, level, since=at)
                at, cuts = level, cuts + 1
            fit(model, walk.ws.data, piece, walk.ws.run, label=f"channel search: climb at step {at}",
                hooks=walk.ws.hooks, teacher=walk.ws.teacher, shuffle=order)
            trials.append(trial := self._check("climb", at, model, begin))
            if trial.met:
                best, held = Candidate(float(at), copy.deepcopy(model)), False
            elif held:
                break
            else:
                held = True
        if cuts == 0:  # the whole path is inside without fine-tuning
            return Candidate(start, None), start
        return best, float(len(walk.path) - 1)

    def start(self, level: float) -> Candidate[nn.Module | None]:
        return Candidate(level, None)

    def tune(self, level: float, base: Candidate[nn.Module | None]) -> tuple[Trial, Candidate[nn.Module | None]]:
        """``base``'s model (or the dense one) cut on to ``level`` and fine-tuned for a quarter of the steps."""
        begin, level = time.perf_counter(), float(int(level))
        dense = base.state is None
        model = copy.deepcopy(self.walk.dense if dense else base.state)
        self.walk.cut(model, level, since=0.0 if dense else base.level)
        ws = self.walk.ws
        fit(model, ws.data, self.short, ws.run, label=f"channel search: step {int(level)}", hooks=ws.hooks,
            teacher=ws.teacher)
        return self._check("tune", level, model, begin), Candidate(level, model)

    def _check(self, phase: str, level: float, model: nn.Module, begin: float) -> Trial:
        acc = self.walk.ws.accuracy(model, self.budget.split)
        return self.walk.trial(phase, level, model, acc, acc >= self.budget.floor, begin)


def search_channels(model: nn.Module, cfg: ChannelPrune, ws: Workspace, example: torch.Tensor) -> Outcome:
    """Prune ``model`` in place to the position a budget or a speed target chooses; fine-tune it."""
    out, walk = Outcome(), _walk(model, cfg, ws, example)
    ft = cfg.finetune or FinetuneConfig()
    if cfg.target_speedup is not None:
        batch, int8 = _measured_on(cfg, ws)
        speedup = channel_cost.speedup_function(cfg.objective, batch, len(batch), ws.run.device, walk.dense, int8=int8,
                                                dist=ws.run.dist)
        goal = cfg.target_speedup * (1 + _MARGIN if cfg.objective == "latency" else 1)
        level, tuned = _fast_enough(walk, speedup, goal, out), None
        if goal > cfg.target_speedup:
            out.notes.append(f"speed target {cfg.target_speedup:g}×: the search aimed at {goal:.3g}× (latency measured "
                             "side by side with the dense model; it moves by a few % between measurements)")
    else:
        assert ws.budget is not None
        level, tuned = _within_budget(walk, ws.budget, ft, out)
    walk.cut(model, level)
    remaining = ft
    if tuned is not None:  # continue from the tuned trial: its weights, then the rest of the steps
        model.load_state_dict(tuned.state_dict())
        steps = _stage_steps(ft, ws)
        remaining = ft.model_copy(update={"max_steps": max(1, steps - steps // _TUNE_SHARE)})
    fit(model, ws.data, remaining, ws.run, label="channel search: final fine-tune", hooks=ws.hooks, teacher=ws.teacher)
    share = channel_cost.removed_share(walk.groups, walk.path[int(level)])
    out.notes.append(f"channel search ({cfg.allocation} allocation, objective {cfg.objective}): step {int(level)} of "
                     f"{len(walk.path) - 1}, {share:.1f}% of channels removed; " + ", ".join(
                         f"{g.name} {g.channels}→{g.channels - n}"
                         for g, n in zip(walk.groups, channel_cost.counts(walk.groups, walk.path[int(level)]).values(),
                                         strict=True)))
    return out


def _stage_steps(ft: FinetuneConfig, ws: Workspace) -> int:
    """Optimizer steps of the stage's whole fine-tuning (what the climb's pieces and the tunes are shares of)."""
    return total_steps(ft, epoch_steps(ws.data, ft))


def _measured_on(cfg: ChannelPrune, ws: Workspace) -> tuple[torch.Tensor, bool]:
    """The batch latency is measured at, and whether the model it measures is the int8 one the run executes."""
    return ws.data.test.head(256).x, ws.int8_execution and cfg.objective == "latency"


def _walk(model: nn.Module, cfg: ChannelPrune, ws: Workspace, example: torch.Tensor) -> Walk:
    groups = structured.plan_groups(model, cfg.model_copy(update={"rate": 0.0}), ws, example)
    batch, int8 = _measured_on(cfg, ws)
    cost = channel_cost.cost_function(cfg.objective, batch, len(batch), ws.run.device, int8=int8,
                                      dist=ws.run.dist)
    walk = Walk(copy.deepcopy(model).eval(), cfg, ws, example, groups, channel_cost.uniform_path(groups))
    if cfg.allocation == "sensitivity":
        ws.run.progress.note("channel search: measuring each group's loss and savings")
        cache = (channel_cost.cache_path(model, groups, f"{ws.run.device}/{len(batch)}/int8={int8}")
                 if cfg.objective == "latency" else None)
        walk.tables = channel_cost.measure(model, groups, walk.prune, cost, ws, cache=cache)
        walk.path = channel_cost.path(walk.tables)
        walk.cost = channel_cost.cost_function(cfg.objective, batch, len(batch), ws.run.device, int8=int8,
                                               dist=ws.run.dist, quick=True)
    return walk


def _within_budget(walk: Walk, budget: Budget, ft: FinetuneConfig, out: Outcome) -> tuple[float, nn.Module | None]:
    def probe(level: float) -> Trial:
        begin = time.perf_counter()
        trial = walk.cut(copy.deepcopy(walk.dense), level)
        acc = walk.ws.accuracy(trial, budget.split)
        return walk.trial("probe", level, trial, acc, acc >= budget.floor, begin)

    # with the climb (≤ 1.25), two tunes (0.25 each) and the final one (0.75): ≤ 2.5 fine-tunings besides the tables
    # and the climb's measurements
    knob = Knob(0, len(walk.path), probe, discrete=True, refiner=TuneRefiner(walk, budget, ft), min_gap=1,
                tune_steps=2)
    result = search(knob, budget)
    out.trials.extend(result.trials)
    assert result.candidate is not None
    return result.candidate.level, result.candidate.state


def _fast_enough(walk: Walk, speedup: Callable[[nn.Module], tuple[float, float]], goal: float, out: Outcome) -> float:
    """The first path position at least ``goal`` times cheaper than the dense model in the objective."""
    last = len(walk.path) - 1

    def cheap_enough(level: float) -> bool:
        begin = time.perf_counter()
        trial = walk.cut(copy.deepcopy(walk.dense), level)
        ratio, value = speedup(trial)
        out.trials.append(walk.trial("speed", level, trial, None, ratio >= goal, begin, cost=round(value, 4)))
        return ratio >= goal

    if not cheap_enough(last):
        return float(last)  # the target is out of reach: the cheapest model; the report says by how much
    return lowest(0, last, cheap_enough)
