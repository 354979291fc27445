"""The one search driver for every accuracy budget: the most compression whose accuracy stays inside.

Any knob where more compression lowers accuracy — a pruning rate, a step along a path of
per-layer bit widths, a channel share — is a :class:`Knob`: levels from ``lo`` (least) to
``hi`` (most compression), an eval-only ``probe`` at a level, and optionally a
:class:`Refiner` that spends fine-tuning. The driver runs the same phases for all of them:

1. **probe** — bisection over the levels with evaluation only (seconds): the highest level the
   model takes without any training;
2. **climb** (refiners) — one fine-tuning run rising from there, checking the budget on the
   way; it keeps the last state inside and reports the highest level it reached;
3. **tune** (refiners) — short fine-tunes bisecting between the kept level and the highest
   reached; the highest that ends inside wins. If the climb kept nothing, one forced trial at
   the lowest level gives the least damaged candidate.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from compress.budget import Budget
from compress.report import Trial

State = TypeVar("State")  # what a refiner keeps of a candidate (weights, masks, …)


@dataclass
class Candidate(Generic[State]):
    """A level and what the method needs to restore the model at it."""

    level: float
    state: State


class Refiner(Protocol[State]):
    """The fine-tuning phases a method offers (pruning does; the bits search does not)."""

    def climb(self, start: float, trials: list[Trial]) -> tuple[Candidate[State] | None, float]:
        """Train upwards from ``start``; the last candidate inside the budget and the highest level reached."""

    def start(self, level: float) -> Candidate[State]:
        """The candidate the tune phase starts from when the climb kept nothing (the current model)."""

    def tune(self, level: float, base: Candidate[State]) -> tuple[Trial, Candidate[State]]:
        """A short fine-tune at ``level`` from ``base``; its trial and the resulting candidate."""


@dataclass
class Knob(Generic[State]):
    """A compression amount: levels ``lo``..``hi`` (``discrete``: integer steps), eval-only ``probe``."""

    lo: float
    hi: float
    probe: Callable[[float], Trial]
    discrete: bool = False
    check_lo: bool = False  # probe ``lo`` itself first (else it is assumed inside)
    probe_steps: int = 7  # continuous knobs: bisection steps
    refiner: Refiner[State] | None = None
    tune_steps: int = 3
    min_gap: float = 0.5  # tune only when the kept and reached levels are further apart than this


@dataclass
class Result(Generic[State]):
    """The chosen level (None: not even ``lo`` is inside), its candidate (refiners) and the trace."""

    level: float | None
    candidate: Candidate[State] | None = None
    probed: float | None = None  # the probe phase's answer
    trials: list[Trial] = field(default_factory=list)


def bisect(lo: float, hi: float, passes: Callable[[float], bool], *, steps: int | None = 7,
           discrete: bool = False) -> float:
    """Highest level that passes, by bisection: ``lo`` is taken to pass, ``hi`` to fail.

    Continuous: ``steps`` halvings. Discrete: until ``lo`` and ``hi`` are adjacent integers, or after
    ``steps`` trials (None: no limit) — never the same integer twice.
    """
    if discrete:
        a, b, left = int(lo), int(hi), steps
        while b - a > 1 and (left is None or left > 0):
            left = None if left is None else left - 1
            mid = (a + b) // 2
            a, b = (mid, b) if passes(mid) else (a, mid)
        return float(a)
    for _ in range(steps):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if passes(mid) else (lo, mid)
    return lo


def lowest(lo: int, hi: int, passes: Callable[[float], bool]) -> float:
    """Lowest level in ``lo..hi`` that passes, by bisection: ``hi`` is taken to pass and passing is monotone
    (the reverse question of :func:`bisect`, e.g. the least compression that reaches a speed target)."""
    below, top = lo - 1, hi  # invariant: ``top`` passes, ``below`` fails (or lies before the start)
    while top - below > 1:
        mid = (below + top) // 2
        below, top = (below, mid) if passes(mid) else (mid, top)
    return float(top)


def search(knob: Knob[State], budget: Budget) -> Result[State]:
    """Run probe → (climb → tune) for ``knob`` under ``budget``."""
    trials: list[Trial] = []

    def probed(level: float) -> bool:
        trial = knob.probe(level)
        trials.append(trial)
        return trial.met

    if knob.check_lo and not probed(knob.lo):
        return Result(None, None, None, trials)
    start = bisect(knob.lo, knob.hi, probed, steps=None if knob.discrete else knob.probe_steps,
                   discrete=knob.discrete)
    if knob.refiner is None:
        return Result(start, None, start, trials)
    kept, reached = knob.refiner.climb(start, trials)
    force = kept is None
    best = knob.refiner.start(start) if kept is None else kept
    best = _tune(knob, best, reached, trials, force)
    return Result(best.level, best, start, trials)


def _tune(knob: Knob[State], kept: Candidate[State], top: float, trials: list[Trial],
          force: bool) -> Candidate[State]:
    """Fine-tuned bisection from ``kept`` towards ``top``; ``force``: one trial at the kept level, kept
    whatever its accuracy (the least damaged candidate when nothing is inside the budget)."""
    assert knob.refiner is not None
    refiner = knob.refiner
    best = kept

    def passes(level: float) -> bool:
        nonlocal best
        trial, candidate = refiner.tune(level, best)
        trials.append(trial)
        if trial.met or force:
            best = candidate
        return trial.met or force

    if force:
        passes(kept.level)
    else:
        steps = knob.tune_steps if top - kept.level > knob.min_gap else 0
        bisect(kept.level, top, passes, steps=steps, discrete=knob.discrete)
    return best
