"""Stage handlers: each takes the pipeline state and its stage's config."""
from __future__ import annotations

from compress import __version__
from compress.errors import UnsupportedError
from compress.pipeline import STAGES, PipelineState
from compress.recipe.schema import Schema, TrainConfig
from compress.training import fit


@STAGES.register("train")
def train_stage(state: PipelineState, cfg: Schema) -> None:
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"train stage got {type(cfg).__name__}")
    fit(state.model, state.data, cfg, state.ctx, label="train", hooks=state.hooks)


@STAGES.register("finetune")
def finetune_stage(state: PipelineState, cfg: Schema) -> None:
    """The training loop again, with the hooks that keep pruned weights and grids in place."""
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"finetune stage got {type(cfg).__name__}")
    fit(state.model, state.data, cfg, state.ctx, label="finetune", hooks=state.hooks)


def _not_yet(kind: str) -> None:
    def handler(state: PipelineState, cfg: Schema) -> None:
        raise UnsupportedError(f"the '{kind}' stage is not implemented in modelzip {__version__} yet",
                               "remove it from the pipeline; train, finetune and evaluate work today")

    STAGES.register(kind)(handler)


for _kind in ("prune", "quantize"):
    _not_yet(_kind)
