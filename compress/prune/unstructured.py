"""Unstructured pruning: the handler of :class:`UnstructuredPrune`.

Wires importance scores (``importance``), mask selection (``masks``), schedules
(``schedules``) and, without a rate under a budget, the budget search (``search``).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from compress.analysis import allocation
from compress.analysis.sensitivity import calibration_split
from compress.errors import InputError
from compress.layers import layer_of
from compress.method import Outcome, Workspace
from compress.prune import importance
from compress.prune.masks import MaskHook, prunable_params, select
from compress.prune.schedules import GradualHook, MaskFn, cycle_rates
from compress.prune.search import search_rate
from compress.prune.structured import output_layers
from compress.prune.unread import zero_unread_units
from compress.prune.variational import VariationalHook
from compress.recipe.base import FinetuneConfig
from compress.recipe.methods import UnstructuredPrune
from compress.training import fit


def prune_unstructured(model: nn.Module, cfg: UnstructuredPrune, ws: Workspace) -> Outcome:
    """Prune ``model`` in place; the masks later training must keep are the outcome's hook."""
    params = prunable_params(model, cfg.skip)
    out = Outcome()
    if cfg.schedule == "variational":  # learns its own scores: no importance, no allocation scan
        hook = _variational(model, cfg, ws, params, out.notes)
    else:
        hook = _scheduled(model, cfg, ws, params, out)
    out.hooks.append(hook)
    learned = cfg.schedule == "variational" and cfg.rate is None  # no threshold across layers, so no ceiling
    if cfg.scope == "global" and cfg.max_layer_rate < 100.0 and not learned:
        out.notes.extend(_ceiling_note(params, cfg.max_layer_rate))  # before the unread zeros: the threshold's
    if cfg.zero_unread:
        _zero_unread(model, ws, hook, out.notes)
    return out


def _scheduled(model: nn.Module, cfg: UnstructuredPrune, ws: Workspace, params: dict[str, nn.Parameter],
               out: Outcome) -> MaskHook:
    """Masks from importance scores: a budget search, one shot, cycles or the gradual ramp."""
    mask_fn = mask_function(model, cfg, ws, params, out.notes)
    if cfg.rate is None:
        if ws.budget is None:  # the recipe validator refuses this; a direct API call gets the same words
            raise InputError(f"prune: {cfg.needs_amount()}")
        return search_rate(model, cfg, ws, params, mask_fn, ws.budget, out)
    if cfg.schedule == "oneshot":
        hook = MaskHook(params, mask_fn(cfg.rate))
        hook.apply()
        return hook
    if cfg.schedule == "iterative":
        return _iterative(model, cfg, ws, params, mask_fn, out.notes)
    return _gradual(model, cfg, ws, params, mask_fn, out.notes)


def _zero_unread(model: nn.Module, ws: Workspace, hook: MaskHook, notes: list[str]) -> None:
    """Units whose every outgoing weight was pruned lose their incoming weights and bias too (exact)."""
    example = ws.data.test.head(1).x.to(ws.run.device)
    zeroed = zero_unread_units(model, example, output_layers(model, example))
    if zeroed:
        hook.keep_zeros()
        notes.append(f"zeroed the weights and biases of {zeroed} unit(s) no later layer reads (outputs unchanged)")


def _ceiling_note(params: dict[str, nn.Parameter], ceiling: float) -> list[str]:
    """Say which layers the global threshold pushed to the per-layer ceiling (they would have lost more)."""
    held = [layer_of(n) or "(root)" for n, p in params.items()
            if p.numel() > 1 and int((p == 0).sum()) >= int(p.numel() * ceiling / 100.0)]
    if not held:
        return []
    return [f"global pruning held {len(held)} layer(s) at the {ceiling:g} % per-layer ceiling ({', '.join(held[:6])}"
            f"{', …' if len(held) > 6 else ''}); the others gave the rest (prune.max_layer_rate sets the ceiling, "
            "prune.layer_rates a layer's own rate)"]


def mask_function(model: nn.Module, cfg: UnstructuredPrune, ws: Workspace, params: dict[str, nn.Parameter],
                  notes: list[str]) -> MaskFn:
    """Masks at a given overall rate; layer overrides scale with it, weights already 0 stay pruned."""
    scorer = importance.get(cfg.method).weights

    def scores_now() -> dict[str, torch.Tensor]:
        was_training = model.training
        scores = scorer(model, params, ws.data, ws.run, cfg.calibration_batches)
        model.train(was_training)
        return _zeros_first(scores, params)

    allocate = None
    if cfg.allocation == "sensitivity":
        ws.run.progress.note("sensitivity scan for per-layer rates")
        calibration, _ = calibration_split(ws.data)
        allocate = allocation.rate_allocator(model, params, scores_now(), calibration, ws.run, cfg.layer_rates,
                                             ws.eval_batch_size)
        if cfg.rate is not None:
            notes.append("sensitivity allocation at {:.1f}%: {}".format(cfg.rate, ", ".join(
                f"{m or '(root)'} {r:.1f}%" for m, r in allocate(cfg.rate).items())))

    def masks_at(rate: float) -> dict[str, torch.Tensor]:
        scores = scores_now()
        if allocate is not None:
            return select(scores, rate, "layer", allocate(rate))
        scale = rate / cfg.rate if cfg.rate else 1.0
        layer_rates = {pat: r * scale for pat, r in cfg.layer_rates.items()}
        return select(scores, rate, cfg.scope, layer_rates, cfg.max_layer_rate)

    return masks_at


def _zeros_first(scores: dict[str, torch.Tensor], params: dict[str, nn.Parameter]) -> dict[str, torch.Tensor]:
    """``scores`` with weights already at zero ranked lowest (so they stay pruned). In place: scores are fresh
    tensors, and a copy of every score is GBs on a large model."""
    for n, s in scores.items():
        s.masked_fill_(params[n].detach() == 0, float("-inf"))
    return scores


def finetune_config(cfg: UnstructuredPrune) -> FinetuneConfig:
    return cfg.finetune or FinetuneConfig()


def _iterative(model: nn.Module, cfg: UnstructuredPrune, ws: Workspace, params: dict[str, nn.Parameter],
               mask_fn: MaskFn, notes: list[str]) -> MaskHook:
    hook = MaskHook(params, {})
    rates = cycle_rates(cfg.rate or 0.0, cfg.iterations)
    for k, rate in enumerate(rates, 1):
        hook = MaskHook(params, mask_fn(rate))
        hook.apply()
        fit(model, ws.data, finetune_config(cfg), ws.run, label=f"prune cycle {k}/{len(rates)}",
            hooks=[*ws.hooks, hook], teacher=ws.teacher)
    notes.append("iterative pruning: " + " → ".join(f"{r:.1f}%" for r in rates))
    return hook


def _gradual(model: nn.Module, cfg: UnstructuredPrune, ws: Workspace, params: dict[str, nn.Parameter],
             mask_fn: MaskFn, notes: list[str]) -> MaskHook:
    hook = GradualHook(params, mask_fn, cfg.rate or 0.0, cfg.update_every, cfg.ramp)
    result = fit(model, ws.data, finetune_config(cfg), ws.run, label="gradual prune",
                 hooks=[*ws.hooks, hook], teacher=ws.teacher)
    if hook.rate < (cfg.rate or 0.0):
        hook.set_rate(cfg.rate or 0.0, result.steps)
    notes.append(f"gradual pruning: {len(hook.updates)} mask updates over {result.steps} steps "
                 f"(every {cfg.update_every}), final rate {hook.rate:.1f}%")
    return hook.frozen()


def _variational(model: nn.Module, cfg: UnstructuredPrune, ws: Workspace, params: dict[str, nn.Parameter],
                 notes: list[str]) -> MaskHook:
    """Sparse variational dropout during the stage's fine-tuning; then the weights whose learned log α is above
    ``max_log_alpha`` go (or, with a rate, exactly that share, highest log α first)."""
    hook = VariationalHook(model, params, len(ws.data.train), cfg.kl_weight, cfg.ramp, ws.run.seed + 11)
    hook.attach()
    try:
        fit(model, ws.data, finetune_config(cfg), ws.run, label="variational dropout", hooks=[*ws.hooks, hook],
            teacher=ws.teacher)
    finally:
        alphas = hook.detach()
    if cfg.rate is None:
        masks = {n: alphas[n] <= cfg.max_log_alpha if n in alphas else torch.ones_like(p, dtype=torch.bool)
                 for n, p in params.items()}
    else:  # rank by log α; weights outside Linear/Conv layers (no noise learned) are ranked last
        scores = {n: -alphas[n] if n in alphas else torch.full_like(p.detach(), float("inf"))
                  for n, p in params.items()}
        masks = select(_zeros_first(scores, params), cfg.rate, cfg.scope, cfg.layer_rates, cfg.max_layer_rate)
    hook_out = MaskHook(params, masks)
    hook_out.apply()
    removed = sum(int((~m).sum()) for m in masks.values()) / max(1, sum(m.numel() for m in masks.values()))
    rule = f"log α > {cfg.max_log_alpha:g}" if cfg.rate is None else f"the highest log α, rate {cfg.rate:g} %"
    notes.append(f"variational dropout: {100 * removed:.2f} % of weights removed ({rule}) after learning their "
                 f"noise on {len(alphas)} of {len(params)} layers")
    return hook_out
