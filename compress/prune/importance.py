"""Importance scores (higher = keep), for single weights and for channel groups. Scoring only.

Each entry implements one name of :data:`compress.recipe.methods.Importance` for both
granularities; a name without an entry is an error, never a silent fallback.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from compress.context import RunContext
from compress.data import Dataset, iter_batches
from compress.registry import Registry

Scores = dict[str, torch.Tensor]
WeightScorer = Callable[[nn.Module, dict[str, nn.Parameter], Dataset, RunContext, int], Scores]
GroupScorer = Callable[[RunContext], Any]  # a torch-pruning importance for channel groups


@dataclass(frozen=True)
class Importance:
    """How one importance ranks single weights and whole channels."""

    weights: WeightScorer  # fresh tensors, one per weight: callers change them in place
    channels: GroupScorer
    needs_gradients: bool = False  # channel scores read ``.grad`` (accumulated first over calibration batches)


IMPORTANCE: Registry[Importance] = Registry("importance method")


def _torch_pruning() -> Any:
    import torch_pruning

    return torch_pruning


def _magnitude(model: nn.Module, params: dict[str, nn.Parameter], data: Dataset, ctx: RunContext,
               batches: int) -> Scores:
    return {n: p.detach().abs() for n, p in params.items()}


def _random(model: nn.Module, params: dict[str, nn.Parameter], data: Dataset, ctx: RunContext,
            batches: int) -> Scores:
    gen = ctx.generator(offset=7)
    return {n: torch.rand(p.shape, generator=gen).to(p.device) for n, p in params.items()}


def _taylor(model: nn.Module, params: dict[str, nn.Parameter], data: Dataset, ctx: RunContext,
            batches: int) -> Scores:
    """|w · ∂L/∂w| accumulated over ``batches`` calibration batches (first-order loss change)."""
    scores = {n: torch.zeros_like(p) for n, p in params.items()}
    model.eval()
    for i, (x, y) in enumerate(iter_batches(data.train, 128, shuffle=True, generator=ctx.generator(offset=3))):
        if i >= batches:
            break
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x.to(ctx.device)), y.to(ctx.device)).backward()
        for n, p in params.items():
            if p.grad is not None:
                scores[n] += (p.detach() * p.grad).abs()
    model.zero_grad(set_to_none=True)
    return scores


class SeededRandomGroups:
    """Random channel scores from the run's generator (torch-pruning's own uses the global RNG)."""

    def __init__(self, gen: torch.Generator) -> None:
        self.gen = gen

    def __call__(self, group: Any, **kwargs: Any) -> torch.Tensor:
        _, idxs = group[0]
        return torch.rand(len(idxs), generator=self.gen)


IMPORTANCE.register("magnitude")(Importance(
    _magnitude, lambda ctx: _torch_pruning().importance.GroupMagnitudeImportance(p=1)))
IMPORTANCE.register("random")(Importance(_random, lambda ctx: SeededRandomGroups(ctx.generator(offset=7))))
IMPORTANCE.register("taylor")(Importance(
    _taylor, lambda ctx: _torch_pruning().importance.GroupTaylorImportance(), needs_gradients=True))


def get(name: str) -> Importance:
    """The implementation of importance ``name`` (a clear error if a recipe name has none)."""
    try:
        return IMPORTANCE.get(name)
    except KeyError as exc:
        raise NotImplementedError(str(exc)) from None
