"""Channel surgery: whole filters/neurons removed through torch-pruning's dependency graph.

The graph keeps coupled layers consistent (BatchNorm, residual adds, the next layer's inputs),
so the model becomes physically smaller. How many channels go where is decided elsewhere
(``channel_plan`` for a rate, ``channel_cost`` and ``channel_search`` for a search); this module
only scores, plans through torch-pruning and cuts.
"""
from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from compress.context import RunContext
from compress.data import Dataset, iter_batches
from compress.errors import InputError, UnsupportedError
from compress.layers import WEIGHTED, matches
from compress.method import Workspace
from compress.models import sync_attributes
from compress.prune import blocks, channel_plan, importance
from compress.prune.channel_plan import GroupPlan
from compress.prune.schedules import cycle_rates
from compress.recipe.base import FinetuneConfig
from compress.recipe.methods import ChannelPrune
from compress.training import fit


def _tp() -> Any:
    import torch_pruning

    return torch_pruning


def plan_groups(model: nn.Module, cfg: ChannelPrune, ws: Workspace, example: torch.Tensor) -> list[GroupPlan]:
    """The model's prunable groups and how many channels each loses at ``cfg.rate`` (0 without a rate)."""
    scorer = build_pruner(model, cfg, example, ws.run, steps=1, ratios={})
    if importance.get(cfg.method).needs_gradients:
        _accumulate_grads(model, ws.data, ws.run, cfg.calibration_batches)
    try:
        return channel_plan.plan(scorer, model, cfg)
    finally:
        model.zero_grad(set_to_none=True)


def prune_counts(model: nn.Module, cfg: ChannelPrune, ws: Workspace, example: torch.Tensor,
                 remove: dict[str, int], cycles: int = 1, finetune: FinetuneConfig | None = None) -> None:
    """Remove ``remove[name]`` channels from each group (named by its root layer), over ``cycles`` steps,
    fine-tuning after each when ``finetune`` is given."""
    modules = dict(model.named_modules())
    ratios = {modules[name]: (n - 0.5) / _out_channels(modules[name]) for name, n in remove.items() if n > 0}
    pruner = build_pruner(model, cfg, example, ws.run, steps=cycles, ratios=ratios)
    for k in range(1, cycles + 1):
        prune_step(pruner, model, ws.data, ws.run, cfg, example)
        if finetune is not None:
            fit(model, ws.data, finetune, ws.run, label=f"prune cycle {k}/{cycles}", hooks=ws.hooks,
                teacher=ws.teacher)


def _out_channels(module: nn.Module) -> int:
    return int(module.weight.shape[0])  # Conv out_channels / Linear out_features: a group's channels


def output_layers(model: nn.Module, example: torch.Tensor) -> list[nn.Module]:
    """Layers whose output is the model's output (the classifier): their outputs are the classes."""
    seen: dict[int, nn.Module] = {}
    handles = [m.register_forward_hook(lambda mod, _i, out: seen.__setitem__(id(out), mod))
               for m in model.modules() if isinstance(m, WEIGHTED)]
    try:
        with torch.no_grad():
            out = model(example)
    finally:
        for h in handles:
            h.remove()
    if id(out) in seen:
        return [seen[id(out)]]
    roots = [m for m in model.modules() if isinstance(m, WEIGHTED)]
    return roots[-1:]


def build_pruner(model: nn.Module, cfg: ChannelPrune, example: torch.Tensor, ctx: RunContext, steps: int,
                 ratios: dict[nn.Module, float]) -> Any:
    """A torch-pruning pruner removing ``ratios`` of each group root's channels over ``steps`` cycles."""
    tp = _tp()
    help_ = blocks.analyse(model, cfg.skip, example)
    ignored = [m for n, m in model.named_modules() if n and matches(n, cfg.skip)] + output_layers(model, example)
    ignored += [*help_.opaque, *help_.frozen]
    inside = {sub for block in help_.opaque for sub in block.modules()}
    roots = [m for m in model.modules() if isinstance(m, WEIGHTED) and m not in ignored and m not in inside]
    if not roots:
        raise InputError("no prunable layer left for channel pruning (the classifier is always kept)",
                         "check prune.skip against the model's module names (modelzip inspect shows them)")
    try:
        with warnings.catch_warnings(), blocks.traceable(help_):
            warnings.simplefilter("ignore")
            return tp.pruner.BasePruner(
                model, example, importance=importance.get(cfg.method).channels(ctx), global_pruning=False,
                pruning_ratio=0.0, pruning_ratio_dict=ratios or None, ignored_layers=ignored,
                unwrapped_parameters=help_.unwrapped or None, customized_pruners=blocks.opaque_pruners(help_),
                iterative_steps=steps, iterative_pruning_ratio_scheduler=_cubic_steps)
    except Exception as exc:  # the graph tracer raises plain errors on ops it cannot follow
        raise UnsupportedError(f"channel pruning could not trace the model: {type(exc).__name__}: {exc}",
                               "skip the module it names (prune.skip) or use granularity: unstructured") from exc


def kept_note(model: nn.Module, cfg: ChannelPrune, example: torch.Tensor) -> str | None:
    """What stays at full width (opaque attention blocks, shuffled streams), for the report."""
    return blocks.analyse(model, cfg.skip, example).kept({m: n for n, m in model.named_modules()})


def preflight(model: nn.Module, cfg: ChannelPrune, example: torch.Tensor, ctx: RunContext) -> None:
    """Refuse, before any training, a model the dependency graph cannot handle (its trace is cheap)."""
    was_training = model.training  # torch-pruning's tracer leaves the model in eval mode
    try:
        build_pruner(model, cfg, example, ctx, steps=1, ratios={})
    finally:
        model.train(was_training)


def _cubic_steps(ratio: float, steps: int) -> list[float]:
    return [0.0, *cycle_rates(ratio, steps)]


def prune_step(pruner: Any, model: nn.Module, data: Dataset, ctx: RunContext, cfg: ChannelPrune,
               example: torch.Tensor) -> None:
    """One pruning step (surgery), with gradients first for taylor; checks the result still runs."""
    if importance.get(cfg.method).needs_gradients:
        _accumulate_grads(model, data, ctx, cfg.calibration_batches)
    try:
        pruner.step()
    finally:
        model.zero_grad(set_to_none=True)
    sync_attributes(model)  # widths read by forwards (a ViT's hidden_dim) follow the cut tensors
    try:
        with torch.no_grad():
            model.eval()(example)
    except Exception as exc:
        raise UnsupportedError(f"the channel-pruned model no longer runs: {type(exc).__name__}: {exc}",
                               "skip the module named above (prune.skip) or use granularity: unstructured") from exc


def _accumulate_grads(model: nn.Module, data: Dataset, ctx: RunContext, batches: int) -> None:
    model.eval()
    model.zero_grad(set_to_none=True)
    for i, (x, y) in enumerate(iter_batches(data.train, 128, shuffle=True, generator=ctx.generator(offset=3))):
        if i >= batches:
            break
        F.cross_entropy(model(x.to(ctx.device)), y.to(ctx.device)).backward()
