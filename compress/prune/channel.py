"""Channel pruning: the handler of :class:`ChannelPrune` (a rate, or a search without one)."""
from __future__ import annotations

from torch import nn

from compress.errors import InputError, UnsupportedError
from compress.method import Outcome, Workspace
from compress.prune import channel_plan, structured
from compress.prune.channel_search import search_channels
from compress.recipe.base import FinetuneConfig
from compress.recipe.methods import ChannelPrune


def prune_channels(model: nn.Module, cfg: ChannelPrune, ws: Workspace) -> Outcome:
    """Remove channels per ``cfg.rate`` (one-shot or iterative), or as far as a budget or speed target allows."""
    if ws.hooks or ws.grids:
        raise UnsupportedError("channel pruning after unstructured pruning or quantization would drop their "
                               "masks/grids", "put the channel prune stage first (and start from a dense model)")
    example = ws.data.test.head(1).x.to(ws.run.device)
    before = sum(p.numel() for p in model.parameters())
    kept = structured.kept_note(model, cfg, example)
    if cfg.rate is None:
        if ws.budget is None and cfg.target_speedup is None:
            raise InputError(f"prune: {cfg.needs_amount()}")
        out = search_channels(model, cfg, ws, example)
    else:
        plans = structured.plan_groups(model, cfg, ws, example)
        cycles = cfg.iterations if cfg.schedule == "iterative" else 1
        finetune = (cfg.finetune or FinetuneConfig()) if cfg.schedule == "iterative" else None
        structured.prune_counts(model, cfg, ws, example, {p.name: p.remove for p in plans}, cycles, finetune)
        out = Outcome(notes=[channel_plan.describe(plans)])
    after = sum(p.numel() for p in model.parameters())
    if kept:
        out.notes.insert(0, kept)
    out.notes.insert(0, f"channel pruning removed {100 * (1 - after / before):.1f}% of parameters "
                        f"({before:,} → {after:,})")
    if after == before and cfg.rate:
        out.notes.insert(1, "channel pruning removed nothing: every group is skipped, the classifier or too "
                            "small to lose a channel at this rate (check prune.skip)")
    return out
