"""The next cut of a climb, measured from the model the climb holds (NetAdapt measures again every iteration).

The path's tables prune each group alone from the dense model. Far along the path they mislead twice:
latency on a CPU is far from additive in the widths (resnet20 at batch 256: 40 % → 50 % of every layer's
channels removed took 61.4 → 37.1 ms, so what one group saves depends on the others' widths), and a dense
model's eval-only loss says little about a model whose earlier cuts were fine-tuned away. So each step of a
climb measures again from the model it has just fine-tuned: per group, its next share on the tables' grid
(or the one after, when the next saves nothing) — the calibration-loss increase and what the objective
saves — and takes the groups cheapest in loss per unit saved until the step saves its part of what is
left. A cut that saves nothing is taken only when no other is left (a narrower layer is not always a
faster one).
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from compress.prune.channel_cost import SHARES, Pruner, Shares, counts
from compress.prune.channel_plan import GroupPlan

_LOOKAHEAD = 2  # shares a group's step may span


@dataclass(frozen=True)
class Step:
    """One group's next share, measured from the current model."""

    group: str
    share: float
    loss: float  # increase of the calibration loss
    saved: float  # what the objective falls by (ms, MACs or parameters)


def next_share(group: GroupPlan, share: float) -> float | None:
    """The first share of the grid above ``share`` that removes more of ``group``'s channels (None: none)."""
    now = counts([group], {group.name: share})[group.name]
    return next((s for s in SHARES if s > share and counts([group], {group.name: s})[group.name] > now), None)


def measure(model: nn.Module, groups: list[GroupPlan], shares: Shares, prune: Pruner,
            cost: Callable[[nn.Module], float], loss: Callable[[nn.Module], float]) -> tuple[float, list[Step]]:
    """The objective of ``model`` (pruned to ``shares``) and every group's next step, each cut from a copy.

    A group whose next share saves nothing is measured one share further (on a CPU 16 → 12 channels can be
    slower and 16 → 8 faster: a step at a time, such a group would never look worth cutting). ``model``'s
    own objective is measured before and after the others and averaged: a latency drifts while a dozen
    models are measured, and every saving is a difference from it."""
    before, now_loss, now = cost(model), loss(model), counts(groups, shares)
    trials: list[tuple[str, float, float, float]] = []
    for group in groups:
        share = shares.get(group.name, 0.0)
        for _ in range(_LOOKAHEAD):
            share = next_share(group, share)
            if share is None:
                break
            trial = copy.deepcopy(model)
            prune(trial, {group.name: counts([group], {group.name: share})[group.name] - now[group.name]})
            value = cost(trial)
            trials.append((group.name, share, loss(trial) - now_loss, value))
            if value < before:
                break
    now_cost = (before + cost(model)) / 2 if trials else before
    steps = [Step(name, share, dl, now_cost - c) for name, share, dl, c in trials]
    # per group, the furthest share measured stands for it (the nearer one saved nothing)
    return now_cost, list({s.group: s for s in steps}.values())


def choose(steps: list[Step], goal: float) -> list[Step]:
    """Steps cheapest in loss per unit saved first until together they save ``goal`` (at least one step)."""
    saving = sorted((s for s in steps if s.saved > 0), key=lambda s: (max(s.loss, 0.0) / s.saved, -s.saved))
    if not saving:  # nothing measured saves anything: the least harmful step keeps the climb moving
        return sorted(steps, key=lambda s: s.loss)[:1]
    taken, total = [], 0.0
    for step in saving:
        if taken and total >= goal:
            break
        taken.append(step)
        total += step.saved
    return taken
