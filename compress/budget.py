"""The accuracy budget: what a search must keep, and how a recipe's budget is shared between stages.

The search that spends it is :mod:`compress.analysis.search` (one driver for every knob).
"""
from __future__ import annotations

from dataclasses import dataclass

from compress.recipe.schema import Recipe, searches


@dataclass(frozen=True)
class Budget:
    """What a budget search must keep: accuracy ≥ ``floor`` (%) on ``split``."""

    floor: float
    split: str


def stage_budget(recipe: Recipe, index: int, base_accuracy: float, split: str) -> Budget | None:
    """The accuracy floor stage ``index`` may search down to (None without a budget).

    A prune search followed by a quantize search (the joint search) gets ``prune_share`` of the
    drop; the quantize search then measures against the full floor, so whatever the pruning left
    unused is the quantizer's to spend.
    """
    drop = recipe.constraints.max_accuracy_drop
    if drop is None:
        return None
    stage = recipe.pipeline[index]
    later = recipe.pipeline[index + 1:]
    if stage.kind == "prune" and searches(stage) and any(s.kind == "quantize" and searches(s) for s in later):
        drop *= recipe.constraints.prune_share
    return Budget(base_accuracy - drop, split)
