"""How many channels each layer loses: the meaning of a channel-pruning rate.

``scope: layer`` — every prunable layer (a dependency group: layers coupled by residual adds
count as one) loses ``rate`` % of its channels, rounded to the nearest channel; ``scope: global``
— ``rate`` % of all prunable channels go, the lowest-scored first across layers (scores as
torch-pruning normalizes them); ``layer_rates`` override per layer. Either way a layer always
keeps at least one channel, so a higher rate never removes less (torch-pruning alone skips a
group it would empty, which made 99 % remove less than 90 %).
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from compress.prune import blocks
from compress.recipe.methods import ChannelPrune


@dataclass
class GroupPlan:
    """One dependency group, named by its root layer: its channels and how many go."""

    module: nn.Module
    name: str
    channels: int
    remove: int
    capped: bool = False  # the rate asked for more; the layer keeps its last channel
    multiple: int = 1  # the width must stay a multiple of this (attention heads)

    def allowed(self, wanted: int) -> int:
        """The most channels up to ``wanted`` this group can lose: at least ``multiple`` stay, and the
        width stays a multiple of it."""
        keep = max(self.channels - wanted, 1)
        return max(0, self.channels - -(-keep // self.multiple) * self.multiple)

    @property
    def ratio(self) -> float:
        """The torch-pruning ratio that removes exactly ``remove`` (its rounding keeps ``int(ch·(1−r))``)."""
        return (self.remove - 0.5) / self.channels if self.remove else 0.0


def plan(pruner: Any, model: nn.Module, cfg: ChannelPrune) -> list[GroupPlan]:
    """Per-group removal counts for ``cfg`` from the pruner's (normalized) channel importances."""
    names = {m: n for n, m in model.named_modules()}
    scored: list[tuple[GroupPlan, torch.Tensor, float | None]] = []
    for group in pruner.DG.get_all_groups(ignored_layers=pruner.ignored_layers,
                                          root_module_types=pruner.root_module_types):
        imp = pruner.estimate_importance(group)
        if imp is None or len(imp) < 2:
            continue
        root = group[0].dep.target.module
        name = names.get(root, "?")
        own = next((r for pat, r in cfg.layer_rates.items() if fnmatch.fnmatch(name, pat)), None)
        entry = GroupPlan(root, name, len(imp), 0, multiple=blocks.multiple(group))
        scored.append((entry, imp.detach().float().cpu(), own))
    rate = cfg.rate or 0.0
    for entry, _, own in scored:
        if own is not None or cfg.scope == "layer":
            _take(entry, round(entry.channels * (rate if own is None else own) / 100.0))
    shared = [(e, imp) for e, imp, own in scored if own is None and cfg.scope == "global"]
    _global(shared, rate)
    for entry, _, _ in scored:
        entry.remove = entry.allowed(entry.remove)
    return [e for e, _, _ in scored]


def _take(entry: GroupPlan, wanted: int) -> None:
    entry.remove = entry.allowed(wanted)
    entry.capped = wanted > entry.channels - entry.multiple


def _global(groups: list[tuple[GroupPlan, torch.Tensor]], rate: float) -> None:
    """Remove ``rate`` % of all channels of ``groups``, lowest scores first, each keeping one."""
    if not groups:
        return
    total = sum(e.channels for e, _ in groups)
    wanted = round(total * rate / 100.0)
    scores = torch.cat([imp for _, imp in groups])
    owner = torch.cat([torch.full((len(imp),), i) for i, (_, imp) in enumerate(groups)])
    taken = 0
    for i in owner[torch.argsort(scores, stable=True)].tolist():
        if taken == wanted:
            break
        entry = groups[i][0]
        if entry.remove < entry.channels - 1:
            entry.remove += 1
            taken += 1
        else:
            entry.capped = True


def describe(plans: list[GroupPlan]) -> str:
    """What the plan removes, layer by layer (for the report's notes)."""
    parts = [f"{p.name or '(root)'} {p.channels}→{p.channels - p.remove}" for p in plans]
    capped = [p.name for p in plans if p.capped]
    text = "channels kept: " + ", ".join(parts)
    if capped:
        text += f"; at their last channel: {', '.join(capped)} (a layer is never emptied)"
    return text
