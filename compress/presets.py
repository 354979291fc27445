"""The one-command workflows (``train``, ``eval``, ``prune``, ``quantize``, ``sensitivity``) as recipe presets.

Each preset edits a recipe *document* (the YAML mapping, before ``--set`` overrides and
validation), so a command is exactly "this recipe, with its pipeline replaced by …" and
everything else — data, model, ``--set`` — behaves as in ``modelzip run``.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from compress.analysis import sensitivity as sens
from compress.context import Progress
from compress.pipeline import run
from compress.quantize import linear
from compress.recipe import LinearQuantize, Recipe

Doc = dict[str, Any]
PipelineEdit = Callable[[list[Any]], list[Any]]


def _stages(pipeline: list[Any], kind: str) -> list[dict[str, Any]]:
    return [s for s in pipeline if isinstance(s, dict) and kind in s]


def edit(doc: Doc, pipeline_edit: PipelineEdit) -> Doc:
    """A copy of ``doc`` with its pipeline replaced by ``pipeline_edit(pipeline)``."""
    out = copy.deepcopy(doc)
    out["pipeline"] = pipeline_edit(list(out.get("pipeline") or []))
    return out


def train_only(pipeline: list[Any]) -> list[Any]:
    """The recipe's ``train`` stages (or one default), then evaluate."""
    return (_stages(pipeline, "train") or [{"train": {}}]) + ["evaluate"]


def evaluate_only(pipeline: list[Any]) -> list[Any]:
    return ["evaluate"]


def baseline(from_checkpoint: bool) -> PipelineEdit:
    """The recipe's ``train`` stages (none when a checkpoint is given), then evaluate."""
    return lambda pipeline: [*([] if from_checkpoint else _stages(pipeline, "train")), "evaluate"]


def compression(stage: str, options: dict[str, Any], finetune_epochs: int | None, from_checkpoint: bool,
                search: bool = False) -> PipelineEdit:
    """[train stages unless a checkpoint is given] + the recipe's ``stage`` updated with ``options``
    + [finetune] + evaluate.

    The recipe's first finetune stage is kept (``finetune_epochs`` sets its epochs; 0 = none). With
    ``search`` (a budget and no amount) the fine-tuning moves inside the stage, which spends it
    where the search decides.
    """
    chosen = {k: v for k, v in options.items() if v not in (None, [])}

    def apply(pipeline: list[Any]) -> list[Any]:
        trains = [] if from_checkpoint else _stages(pipeline, "train")
        own = _stages(pipeline, stage)
        body = {**((own[0][stage] or {}) if own else {}), **chosen}
        finetunes = _stages(pipeline, "finetune")[:1] or [{"finetune": {}}]
        if finetune_epochs is not None:
            finetunes = [] if finetune_epochs == 0 else [
                {"finetune": {**(finetunes[0]["finetune"] or {}), "epochs": finetune_epochs}}]
        if search:
            return [*trains, {stage: {**body, "finetune": finetunes[0]["finetune"] if finetunes else None}},
                    "evaluate"]
        return [*trains, {stage: body}, *finetunes, "evaluate"]

    return apply


@dataclass
class SensitivityRun:
    result: sens.Sensitivity
    model: str
    dataset: str


def sensitivity(recipe: Recipe, rates: list[float], bits: list[int],
                progress: Progress | None = None) -> SensitivityRun:
    """Train (or load) per ``recipe`` — a baseline preset — then scan each layer alone.

    Pruning is magnitude, quantization linear per-channel symmetric (min-max). The scan is measured
    on the calibration split (validation, else the first training images), never on the test set.
    """
    res = run(recipe, progress=progress, write=False)
    split, name = sens.calibration_split(res.state.data)
    result = sens.measure(res.model, split, res.state.ctx, rates=rates, bits=bits,
                          project=linear.projection(LinearQuantize(bits=8)), batch_size=res.state.data.eval_batch_size,
                          split_name=name)
    return SensitivityRun(result, recipe.model.name, recipe.data.name)
