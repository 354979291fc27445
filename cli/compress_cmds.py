"""``modelzip prune`` and ``modelzip quantize``: a recipe with one compression stage swapped in."""
from __future__ import annotations

from typing import Annotated, Any

import typer

from cli.common import (
    CheckpointOpt, DeviceOpt, JsonOpt, OutputOpt, QuietOpt, RecipeOpt, SetOpt, TrustOpt, build_recipe, execute,
)
from cli.errors import guarded

FinetuneOpt = Annotated[int | None, typer.Option("--finetune-epochs", help="Fine-tuning epochs after the stage "
                                                 "(0 = none; default: the recipe's finetune stage).")]
MaxDropOpt = Annotated[float | None, typer.Option("--max-drop", help="Accuracy budget in pp (exit 3 if exceeded); "
                                                  "prune without --rate searches the highest rate within it, "
                                                  "quantize without --bits the fewest bits per layer.")]
AllocationOpt = Annotated[str | None, typer.Option("--allocation", help="uniform | sensitivity (per-layer amounts "
                                                   "from an eval-only sensitivity scan)")]


def compression_pipeline(stage: str, options: dict[str, Any], finetune_epochs: int | None,
                         has_checkpoint: bool, search: bool = False) -> Any:
    """Pipeline edit: [train stages unless a checkpoint is given] + stage + [finetune] + evaluate.

    With ``search`` (a budget and no rate) the fine-tuning moves inside the stage, which spends
    it where the search decides.
    """
    chosen = {k: v for k, v in options.items() if v not in (None, [])}

    def edit(pipeline: list[Any]) -> list[Any]:
        trains = [] if has_checkpoint else [s for s in pipeline if isinstance(s, dict) and "train" in s]
        finetunes = [s for s in pipeline if isinstance(s, dict) and "finetune" in s][:1] or [{"finetune": {}}]
        if finetune_epochs is not None:
            finetunes = [{"finetune": {**(finetunes[0]["finetune"] or {}), "epochs": finetune_epochs}}]
            if finetune_epochs == 0:
                finetunes = []
        if search:
            return [*trains, {stage: {**chosen, "finetune": finetunes[0]["finetune"] if finetunes else None}},
                    "evaluate"]
        return [*trains, {stage: chosen}, *finetunes, "evaluate"]

    return edit


@guarded
def prune_cmd(ctx: typer.Context, 
    rate: Annotated[float | None, typer.Option("--rate", help="% of prunable weights removed, [0, 100).")] = None,
    method: Annotated[str | None, typer.Option("--method", help="magnitude | random | taylor")] = None,
    granularity: Annotated[str | None, typer.Option("--granularity", help="unstructured | channel")] = None,
    scope: Annotated[str | None, typer.Option("--scope", help="global | layer")] = None,
    schedule: Annotated[str | None, typer.Option("--schedule", help="oneshot | iterative | gradual")] = None,
    skip: Annotated[list[str] | None, typer.Option("--skip", help="Module name pattern left dense.")] = None,
    min_rate: Annotated[float | None, typer.Option("--min-rate", help="With --max-drop and no --rate: the "
                                                   "lowest rate the search may return.")] = None,
    allocation: AllocationOpt = None, finetune_epochs: FinetuneOpt = None, max_drop: MaxDropOpt = None,
    recipe: RecipeOpt = None, sets: SetOpt = None, checkpoint: CheckpointOpt = None, output: OutputOpt = None,
    device: DeviceOpt = None, json_path: JsonOpt = None, quiet: QuietOpt = False, trust: TrustOpt = False,
) -> None:
    """Prune a model: train it per the recipe (or load --checkpoint), prune, fine-tune, evaluate."""
    options = {"rate": rate, "method": method, "granularity": granularity, "scope": scope,
               "schedule": schedule, "skip": skip, "min_rate": min_rate, "allocation": allocation}
    _run_compression("prune", options, finetune_epochs, max_drop, recipe, sets, checkpoint, output, device,
                     json_path, quiet, trust)


@guarded
def quantize_cmd(ctx: typer.Context, 
    bits: Annotated[int | None, typer.Option("--bits", help="1–8, or 16 for fp16 (with --allocation sensitivity: "
                                             "the mean). Omit with --max-drop to search.")] = None,
    method: Annotated[str | None, typer.Option("--method", help="linear | kmeans")] = None,
    granularity: Annotated[str | None, typer.Option("--granularity", help="channel | tensor")] = None,
    execute_as: Annotated[str | None, typer.Option("--execute", help="float (decode to float, runs anywhere) | "
                                                   "int8 (integer kernels on CPU)")] = None,
    observer: Annotated[str | None, typer.Option("--observer", help="int8 activation calibration: "
                                                 "minmax | histogram | percentile")] = None,
    range_: Annotated[str | None, typer.Option("--range", help="linear grid range: minmax | mse")] = None,
    allocation: AllocationOpt = None, finetune_epochs: FinetuneOpt = None, max_drop: MaxDropOpt = None,
    recipe: RecipeOpt = None, sets: SetOpt = None, checkpoint: CheckpointOpt = None, output: OutputOpt = None,
    device: DeviceOpt = None, json_path: JsonOpt = None, quiet: QuietOpt = False, trust: TrustOpt = False,
) -> None:
    """Quantize weights: train per the recipe (or load --checkpoint), quantize, fine-tune, evaluate."""
    options = {"bits": bits, "method": method, "granularity": granularity, "execute": execute_as,
               "observer": observer, "range": range_, "allocation": allocation}
    _run_compression("quantize", options, finetune_epochs, max_drop, recipe, sets, checkpoint, output, device,
                     json_path, quiet, trust)


def _run_compression(stage: str, options: dict[str, Any], finetune_epochs: int | None, max_drop: float | None,
                     recipe: Any, sets: list[str] | None, checkpoint: Any, output: Any, device: str | None,
                     json_path: Any, quiet: bool, trust: bool) -> None:
    search = stage == "prune" and options.get("rate") is None and max_drop is not None
    edit = compression_pipeline(stage, options, finetune_epochs, checkpoint is not None, search=search)
    extra = [f"constraints.max_accuracy_drop={max_drop}"] if max_drop is not None else []
    r = build_recipe(recipe, [*extra, *(sets or [])], checkpoint=checkpoint, output=output, device=device,
                     trust=trust, edit=edit, quiet=quiet)
    execute(r, quiet=quiet, json_path=json_path)
