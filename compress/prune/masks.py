"""Choosing which weights to remove from scores, and keeping them at exactly zero."""
from __future__ import annotations

import torch
import torch.nn as nn

from compress.errors import InputError
from compress.layers import per_layer, weight_params
from compress.ranking import keep_all_but, keep_all_but_many, keep_top
from compress.training import TrainHook


def prunable_params(model: nn.Module, skip: list[str]) -> dict[str, nn.Parameter]:
    """Weights of Linear/Conv layers whose module name matches no ``skip`` pattern."""
    out = weight_params(model, skip)
    if not out:
        raise InputError("no prunable layer (Linear/Conv weights) left after skip patterns",
                         "check prune.skip against the model's module names (modelzip inspect shows them)")
    return out


def select(scores: dict[str, torch.Tensor], rate: float, scope: str, layer_rates: dict[str, float],
           max_layer_rate: float = 100.0) -> dict[str, torch.Tensor]:
    """Boolean keep-masks removing ``rate`` % of weights by lowest score (global or per layer).

    Layers matching ``layer_rates`` patterns use their own rate; the rest share ``rate``. In global
    scope no shared layer loses more than ``max_layer_rate`` % (weights already at -inf excepted):
    what a capped layer cannot give, the others give.
    """
    masks: dict[str, torch.Tensor] = {}
    shared = {n: s for n, s in scores.items() if per_layer(n, -1.0, layer_rates) < 0}
    for name, s in scores.items():
        if name not in shared or scope == "layer":
            masks[name] = keep_top(s.flatten(), per_layer(name, rate, layer_rates)).view_as(s)
    if scope == "global" and shared:
        masks.update(_global(shared, rate, max_layer_rate))
    return masks


def _global(scores: dict[str, torch.Tensor], rate: float, cap: float) -> dict[str, torch.Tensor]:
    """One threshold over all layers, water-filled under the per-layer ceiling ``cap``."""
    total = sum(s.numel() for s in scores.values())
    to_remove = int(round(total * rate / 100.0))
    limit = {n: max(int(s.numel() * cap / 100.0), int(torch.isneginf(s).sum())) for n, s in scores.items()}
    capped: set[str] = set()
    while True:  # each pass caps at least one more layer, so at most len(scores) passes
        free = {n: s for n, s in scores.items() if n not in capped}
        budget = max(0, to_remove - sum(limit[n] for n in capped))
        masks = dict(zip(free, keep_all_but_many(list(free.values()), budget)))
        over = {n for n, m in masks.items() if int((~m).sum()) > limit[n]}
        if not over:
            break
        capped |= over
    for name in capped:
        masks[name] = keep_all_but(scores[name], limit[name])
    return masks


class MaskHook(TrainHook):
    """Keeps pruned weights at exactly zero: gradients masked, weights re-masked after each step
    (so neither momentum nor weight decay can revive them)."""

    def __init__(self, params: dict[str, nn.Parameter], masks: dict[str, torch.Tensor]) -> None:
        self.pairs = [(params[n], masks[n].to(params[n].device)) for n in masks]

    def after_backward(self, model: nn.Module) -> None:
        for p, m in self.pairs:
            if p.grad is not None:
                p.grad.mul_(m)

    @torch.no_grad()
    def after_step(self, model: nn.Module, step: int, total: int) -> None:
        self.apply()

    @torch.no_grad()
    def apply(self) -> None:
        for p, m in self.pairs:
            p.mul_(m)

    @torch.no_grad()
    def keep_zeros(self) -> None:
        """Extend the masks to every weight now at zero (after units were zeroed outside the hook)."""
        for p, m in self.pairs:
            m &= p != 0
