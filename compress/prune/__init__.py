"""Pruning: ``apply(state, config)`` scores, selects and keeps sparsity on its schedule.

Importance scoring (``importance``), mask selection (``masks``), channel surgery
(``structured``) and schedules (``schedules``) are separate; this module wires them.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from compress.errors import InputError, UnsupportedError
from compress.layers import module_of, per_layer
from compress.prune.importance import IMPORTANCE
from compress.prune.masks import MAX_RATE, MaskHook, prunable_params, select
from compress.prune.schedules import GradualHook, MaskFn, cycle_rates
from compress.recipe.schema import FinetuneConfig, PruneConfig
from compress.training import fit

if TYPE_CHECKING:
    from compress.pipeline import PipelineState

__all__ = ["apply"]


def apply(state: PipelineState, cfg: PruneConfig) -> None:
    """Prune ``state.model`` in place per ``cfg``; masks that later training must keep go to ``state.hooks``."""
    if cfg.rate is None and (state.budget is None or cfg.granularity != "unstructured"):
        raise InputError("prune: no rate given", "pass --rate R (percent, 0 ≤ R < 100) or set prune.rate, or "
                         "give an accuracy budget (--max-drop) to search for the highest rate (unstructured)")
    if cfg.granularity == "channel":
        _apply_channel(state, cfg)
        return
    from compress.quantize.qat import CodebookHook

    if any(isinstance(h, CodebookHook) for h in state.hooks):
        raise UnsupportedError("pruning after k-means quantization would let shared values revive pruned "
                               "weights", "put the prune stage before the quantize stage")
    params = prunable_params(state.model, cfg.skip)
    mask_fn = _mask_fn(state, cfg, params)
    if cfg.rate is None and state.budget is not None:
        from compress.prune.search import search

        hook = search(state, cfg, params, mask_fn, state.budget)
    elif cfg.schedule == "oneshot":
        hook = MaskHook(params, mask_fn(cfg.rate))
        hook.apply()
    elif cfg.schedule == "iterative":
        hook = _iterative(state, cfg, params, mask_fn)
    else:
        hook = _gradual(state, cfg, params, mask_fn)
    state.hooks.append(hook)


def _mask_fn(state: PipelineState, cfg: PruneConfig, params: dict[str, nn.Parameter]) -> MaskFn:
    """Masks at a given overall rate; layer overrides scale with it, weights already 0 stay pruned."""
    scorer = IMPORTANCE.get(cfg.method)

    def scores_now() -> dict[str, torch.Tensor]:
        was_training = state.model.training
        scores = scorer(state.model, params, state.data, state.ctx, cfg.calibration_batches)
        state.model.train(was_training)
        return {n: s.masked_fill(params[n].detach() == 0, float("-inf")) for n, s in scores.items()}

    allocate = _sensitivity_allocator(state, cfg, params, scores_now()) if cfg.allocation == "sensitivity" else None

    def masks_at(rate: float) -> dict[str, torch.Tensor]:
        scores = scores_now()
        if allocate is not None:
            return select(scores, rate, "layer", allocate(rate))
        scale = rate / cfg.rate if cfg.rate else 1.0
        layer_rates = {pat: r * scale for pat, r in cfg.layer_rates.items()}
        return select(scores, rate, cfg.scope, layer_rates)

    return masks_at


_ALLOCATION_RATES = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 85.0, 90.0, 93.0, 95.0, 97.0, 98.0, 99.0, 99.5]


def _sensitivity_allocator(state: PipelineState, cfg: PruneConfig, params: dict[str, nn.Parameter],
                           scores: dict[str, torch.Tensor]) -> Callable[[float], dict[str, float]]:
    """Per-layer rates for an overall rate, from one eval-only sensitivity scan (``layer_rates`` stay fixed)."""
    from compress import allocation, sensitivity

    state.ctx.progress.note("sensitivity scan for per-layer rates")
    was_training = state.model.training
    state.model.eval()
    scan = sensitivity.measure(state.model, sensitivity.calibration_split(state.data), state.ctx,
                               rates=_ALLOCATION_RATES, bits=[], batch_size=state.eval_batch_size, scores=scores,
                               layers=params)
    state.model.train(was_training)
    fixed = {module_of(n): per_layer(n, -1.0, cfg.layer_rates) for n in params}
    fixed = {m: r for m, r in fixed.items() if r >= 0}
    free = {m: c for m, c in scan.prune_costs().items() if m not in fixed}
    sizes = scan.params

    def rates_at(rate: float) -> dict[str, float]:
        total, free_size = sum(sizes.values()), sum(sizes[m] for m in free)
        rest = (rate * total - sum(r * sizes[m] for m, r in fixed.items())) / max(free_size, 1)
        rates = allocation.rates_for(free, {m: sizes[m] for m in free}, min(max(rest, 0.0), MAX_RATE))
        return {**rates, **fixed}

    if cfg.rate is not None:
        state.notes.append("sensitivity allocation at {:.1f}%: {}".format(cfg.rate, ", ".join(
            f"{m or '(root)'} {r:.1f}%" for m, r in rates_at(cfg.rate).items())))
    return rates_at


def _finetune_cfg(cfg: PruneConfig) -> FinetuneConfig:
    return cfg.finetune or FinetuneConfig()


def _iterative(state: PipelineState, cfg: PruneConfig, params: dict[str, nn.Parameter], mask_fn: MaskFn) -> MaskHook:
    hook = MaskHook(params, {})
    rates = cycle_rates(cfg.rate or 0.0, cfg.iterations)
    for k, rate in enumerate(rates, 1):
        hook = MaskHook(params, mask_fn(rate))
        hook.apply()
        fit(state.model, state.data, _finetune_cfg(cfg), state.ctx, label=f"prune cycle {k}/{len(rates)}",
            hooks=[*state.hooks, hook], teacher=state.teacher)
    state.notes.append("iterative pruning: " + " → ".join(f"{r:.1f}%" for r in rates))
    return hook


def _gradual(state: PipelineState, cfg: PruneConfig, params: dict[str, nn.Parameter], mask_fn: MaskFn) -> MaskHook:
    hook = GradualHook(params, mask_fn, cfg.rate or 0.0, cfg.update_every, cfg.ramp)
    result = fit(state.model, state.data, _finetune_cfg(cfg), state.ctx, label="gradual prune",
                 hooks=[*state.hooks, hook], teacher=state.teacher)
    if hook.rate < (cfg.rate or 0.0):
        hook.set_rate(cfg.rate or 0.0, result.steps)
    state.notes.append(f"gradual pruning: {len(hook.updates)} mask updates over {result.steps} steps "
                       f"(every {cfg.update_every}), final rate {hook.rate:.1f}%")
    return hook.frozen()


def _apply_channel(state: PipelineState, cfg: PruneConfig) -> None:
    from compress.prune import structured

    if state.hooks or state.grids:
        raise UnsupportedError("channel pruning after unstructured pruning or quantization would drop their "
                               "masks/grids", "put the channel prune stage first")
    if cfg.schedule == "gradual":
        raise UnsupportedError("channel pruning has no gradual schedule (surgery cannot happen inside a "
                               "training step)", "use schedule: iterative (prune/fine-tune cycles) or oneshot")
    example = state.data.test.x[:1].to(state.ctx.device)
    cycles = cfg.iterations if cfg.schedule == "iterative" else 1
    before = sum(p.numel() for p in state.model.parameters())
    pruner = structured.build_pruner(state.model, cfg, example, state.ctx, steps=cycles)
    for k in range(1, cycles + 1):
        structured.prune_step(pruner, state.model, state.data, state.ctx, cfg, example)
        if cfg.schedule == "iterative":
            fit(state.model, state.data, _finetune_cfg(cfg), state.ctx, label=f"prune cycle {k}/{cycles}",
                hooks=state.hooks, teacher=state.teacher)
    after = sum(p.numel() for p in state.model.parameters())
    state.notes.append(f"channel pruning removed {100 * (1 - after / before):.1f}% of parameters "
                       f"({before:,} → {after:,})")
