"""Pruning: ``apply(state, config)`` scores weights, selects masks, and keeps them through training."""
from __future__ import annotations

from compress.errors import InputError, UnsupportedError
from compress.prune.importance import IMPORTANCE
from compress.prune.masks import MaskHook, prunable_params, select
from compress.recipe.schema import PruneConfig

__all__ = ["apply"]


def apply(state: "PipelineState", cfg: PruneConfig) -> MaskHook:  # noqa: F821
    """Prune ``state.model`` in place per ``cfg``; the returned hook is added to ``state.hooks``."""
    if cfg.rate is None:
        raise InputError("prune: no rate given", "pass --rate R (percent, 0 ≤ R < 100) or set prune.rate")
    if cfg.granularity != "unstructured" or cfg.schedule != "oneshot":
        raise UnsupportedError(f"prune: granularity '{cfg.granularity}' with schedule '{cfg.schedule}' is not "
                               "implemented yet", "use granularity: unstructured, schedule: oneshot")
    params = prunable_params(state.model, cfg.skip)
    scores = IMPORTANCE.get(cfg.method)(state.model, params, state.data, state.ctx, cfg.calibration_batches)
    hook = MaskHook(params, select(scores, cfg.rate, cfg.scope, cfg.layer_rates))
    hook.apply()
    state.hooks.append(hook)
    return hook
