"""When to prune how much: one-shot, iterative cycles and Zhu & Gupta's gradual ramp.

Schedules only decide sparsity over time; scoring lives in ``importance`` and mask
selection in ``masks`` (or ``structured`` for channel surgery).
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn as nn

from compress.prune.masks import MaskHook


def cubic(progress: float, final: float, initial: float = 0.0) -> float:
    """Zhu & Gupta (2017): s = s_f + (s_i − s_f)(1 − progress)³, progress ∈ [0, 1] clamped."""
    p = min(max(progress, 0.0), 1.0)
    return final + (initial - final) * (1.0 - p) ** 3


def cycle_rates(final: float, cycles: int) -> list[float]:
    """Target rates for ``cycles`` prune/fine-tune cycles, front-loaded like the cubic ramp."""
    return [cubic(k / cycles, final) for k in range(1, cycles + 1)]


MaskFn = Callable[[float], dict[str, torch.Tensor]]


class GradualHook(MaskHook):
    """Raises sparsity along the cubic ramp during training, recomputing masks every ``every`` steps.

    ``mask_fn(rate)`` returns keep-masks at ``rate`` %; pruned weights are zero and never
    regrow (their gradients are masked), so masks only ever lose entries.
    """

    def __init__(self, params: dict[str, nn.Parameter], mask_fn: MaskFn, final: float, every: int,
                 ramp: float) -> None:
        super().__init__(params, {n: torch.ones_like(p, dtype=torch.bool) for n, p in params.items()})
        self.params, self.mask_fn, self.final = params, mask_fn, final
        self.every, self.ramp = every, ramp
        self.rate = 0.0
        self.updates: list[tuple[int, float]] = []  # (step, rate) of each mask update

    def after_step(self, model: nn.Module, step: int, total: int) -> None:
        ramp_steps = max(1, math.floor(self.ramp * total))
        if step % self.every == 0 or step == ramp_steps:
            target = cubic(step / ramp_steps, self.final)
            if target > self.rate:
                self.set_rate(target, step)
        super().after_step(model, step, total)

    def set_rate(self, rate: float, step: int) -> None:
        masks = self.mask_fn(rate)
        self.pairs = [(self.params[n], masks[n].to(self.params[n].device)) for n in masks]
        self.rate = rate
        self.updates.append((step, rate))
        self.apply()

    def frozen(self) -> MaskHook:
        """The final masks as a plain hook, for the stages that follow."""
        hook = MaskHook({}, {})
        hook.pairs = list(self.pairs)
        return hook
