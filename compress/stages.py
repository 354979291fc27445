"""Stage handlers: each takes the pipeline state and its stage's config."""
from __future__ import annotations

from compress.pipeline import STAGES, PipelineState
from compress.recipe.schema import PruneConfig, QuantizeConfig, Schema, TrainConfig
from compress.training import fit


def _training_stage(label: str) -> None:
    """``train`` and ``finetune`` are the same loop; the hooks keep pruned weights and grids in place."""

    def handler(state: PipelineState, cfg: Schema) -> None:
        if not isinstance(cfg, TrainConfig):
            raise TypeError(f"{label} stage got {type(cfg).__name__}")
        fit(state.model, state.data, cfg, state.ctx, label=label, hooks=state.hooks, teacher=state.teacher)

    STAGES.register(label)(handler)


for _label in ("train", "finetune"):
    _training_stage(_label)




@STAGES.register("prune")
def prune_stage(state: PipelineState, cfg: Schema) -> None:
    from compress import prune

    if not isinstance(cfg, PruneConfig):
        raise TypeError(f"prune stage got {type(cfg).__name__}")
    prune.apply(state, cfg)


@STAGES.register("quantize")
def quantize_stage(state: PipelineState, cfg: Schema) -> None:
    from compress import quantize

    if not isinstance(cfg, QuantizeConfig):
        raise TypeError(f"quantize stage got {type(cfg).__name__}")
    quantize.apply(state, cfg)
