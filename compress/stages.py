"""Stage handlers: each takes the pipeline state and its stage's config."""
from __future__ import annotations

from compress import __version__
from compress.errors import UnsupportedError
from compress.pipeline import STAGES, PipelineState
from compress.recipe.schema import PruneConfig, Schema, TrainConfig
from compress.training import fit


def _training_stage(label: str) -> None:
    """``train`` and ``finetune`` are the same loop; the hooks keep pruned weights and grids in place."""

    def handler(state: PipelineState, cfg: Schema) -> None:
        if not isinstance(cfg, TrainConfig):
            raise TypeError(f"{label} stage got {type(cfg).__name__}")
        fit(state.model, state.data, cfg, state.ctx, label=label, hooks=state.hooks)

    STAGES.register(label)(handler)


for _label in ("train", "finetune"):
    _training_stage(_label)


def _not_yet(kind: str) -> None:
    def handler(state: PipelineState, cfg: Schema) -> None:
        raise UnsupportedError(f"the '{kind}' stage is not implemented in modelzip {__version__} yet",
                               "remove it from the pipeline; train, finetune and evaluate work today")

    STAGES.register(kind)(handler)


_not_yet("quantize")


@STAGES.register("prune")
def prune_stage(state: PipelineState, cfg: Schema) -> None:
    from compress import prune

    if not isinstance(cfg, PruneConfig):
        raise TypeError(f"prune stage got {type(cfg).__name__}")
    prune.apply(state, cfg)
