"""Importance scores per prunable weight (higher = keep). Scoring only: no surgery here."""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from compress.context import RunContext
from compress.data import Dataset, iter_batches
from compress.registry import Registry

Scores = dict[str, torch.Tensor]
Scorer = Callable[[nn.Module, dict[str, nn.Parameter], Dataset, RunContext, int], Scores]
IMPORTANCE: Registry[Scorer] = Registry("importance method")


@IMPORTANCE.register("magnitude")
def magnitude(model: nn.Module, params: dict[str, nn.Parameter], data: Dataset, ctx: RunContext,
              batches: int) -> Scores:
    return {n: p.detach().abs() for n, p in params.items()}


@IMPORTANCE.register("random")
def random(model: nn.Module, params: dict[str, nn.Parameter], data: Dataset, ctx: RunContext,
           batches: int) -> Scores:
    gen = ctx.generator(offset=7)
    return {n: torch.rand(p.shape, generator=gen).to(p.device) for n, p in params.items()}


@IMPORTANCE.register("taylor")
def taylor(model: nn.Module, params: dict[str, nn.Parameter], data: Dataset, ctx: RunContext,
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
