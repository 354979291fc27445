"""``modelzip prune`` and ``modelzip quantize``: the recipe with one compression stage (a preset).

The choices of every option come from the method config classes, so the CLI, the recipe
schema and the dispatch cannot disagree.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

import typer

from cli.common import RUNS, Common, build_recipe, check_outputs, command, execute
from compress.recipe.methods import (
    PRUNE_METHODS, QUANTIZE_METHODS, ChannelPrune, Importance, LinearQuantize, PruneBase, QuantizeBase,
    UnstructuredPrune, tags,
)


def choices(*sources: Any) -> Any:
    """A ``Literal`` of the values of the schema's ``Literal`` field types or name tuples given."""
    values: list[str] = []
    for src in sources:
        for v in (get_args(src) if not isinstance(src, tuple) else src):
            if v not in values:
                values.append(v)
    return Literal[tuple(values)]  # type: ignore[valid-type]


def _field(cls: type, name: str) -> Any:
    return cls.model_fields[name].annotation


Method = choices(Importance)
Granularity = choices(tags(PRUNE_METHODS))
Scope = choices(_field(PruneBase, "scope"))
Schedule = choices(_field(UnstructuredPrune, "schedule"))
PruneAllocation = choices(_field(UnstructuredPrune, "allocation"))
Objective = choices(_field(ChannelPrune, "objective"))
QuantMethod = choices(tags(QUANTIZE_METHODS))
QuantGranularity = choices(_field(LinearQuantize, "granularity"))
Execute = choices(_field(QuantizeBase, "execute"))
Observer = choices(_field(QuantizeBase, "observer"))
Range = choices(_field(LinearQuantize, "range"))
QuantAllocation = choices(_field(QuantizeBase, "allocation"))

FinetuneOpt = Annotated[int | None, typer.Option("--finetune-epochs", metavar="N", help="Fine-tuning epochs after "
                                                 "the stage (0 = none; default: the recipe's finetune stage).")]
MaxDropOpt = Annotated[float | None, typer.Option("--max-drop", metavar="PP", help="Accuracy budget in pp (exit 3 "
                                                  "if exceeded); prune without --rate searches the highest rate "
                                                  "within it, quantize without --bits the fewest bits per layer.")]


@command(*RUNS)
def prune_cmd(
    ctx: typer.Context,
    rate: Annotated[float | None, typer.Option("--rate", metavar="PCT", help="% of prunable weights (channel: "
                                               "channels) removed, 0 ≤ PCT < 100.")] = None,
    method: Annotated[Method | None, typer.Option("--method", help="Importance score.")] = None,
    granularity: Annotated[Granularity | None, typer.Option("--granularity", help="Single weights, or whole "
                                                            "channels (smaller and faster).")] = None,
    scope: Annotated[Scope | None, typer.Option("--scope", help="One threshold across layers, or a rate per "
                                                "layer.")] = None,
    schedule: Annotated[Schedule | None, typer.Option("--schedule", help="When to prune (gradual, variational: "
                                                      "unstructured only; variational learns the rate).")] = None,
    skip: Annotated[list[str] | None, typer.Option("--skip", metavar="PATTERN", help="Module name pattern left "
                                                   "dense (repeatable).")] = None,
    min_rate: Annotated[float | None, typer.Option("--min-rate", metavar="PCT", help="With --max-drop and no "
                                                   "--rate: the lowest rate the search may return.")] = None,
    allocation: Annotated[PruneAllocation | None, typer.Option("--allocation", help="Per-layer amounts: uniform, "
                                                               "or from an eval-only sensitivity scan.")] = None,
    objective: Annotated[Objective | None, typer.Option("--objective", help="channel search: what to reduce — "
                                                        "measured latency, MACs or parameters.")] = None,
    target_speedup: Annotated[float | None, typer.Option("--target-speedup", metavar="S", help="channel: the most "
                                                         "accurate model at least S× faster (in --objective).")]
    = None,
    finetune_epochs: FinetuneOpt = None, max_drop: MaxDropOpt = None, *, common: Common,
) -> None:
    """Prune a model: train it per the recipe (or load --checkpoint), prune, fine-tune, evaluate."""
    options = {"rate": rate, "method": method, "granularity": granularity, "scope": scope,
               "schedule": schedule, "skip": skip, "min_rate": min_rate, "allocation": allocation,
               "objective": objective, "target_speedup": target_speedup}
    _run_compression("prune", options, finetune_epochs, max_drop, common)


@command(*RUNS)
def quantize_cmd(
    ctx: typer.Context,
    bits: Annotated[int | None, typer.Option("--bits", metavar="N", help="1–8, or 16 for fp16 (with --allocation "
                                             "sensitivity: the mean). Omit with --max-drop to search.")] = None,
    method: Annotated[QuantMethod | None, typer.Option("--method", help="Uniform grid, or shared values "
                                                       "(k-means).")] = None,
    granularity: Annotated[QuantGranularity | None, typer.Option("--granularity", help="linear: one scale per "
                                                                 "output channel, or per tensor.")] = None,
    execute_as: Annotated[Execute | None, typer.Option("--execute", help="float: decode to float, runs anywhere; "
                                                       "int8: integer kernels on CPU.")] = None,
    observer: Annotated[Observer | None, typer.Option("--observer", help="int8 activation calibration.")] = None,
    range_: Annotated[Range | None, typer.Option("--range", help="linear grid range estimate.")] = None,
    allocation: Annotated[QuantAllocation | None, typer.Option("--allocation", help="Per-layer bits: the same "
                                                               "everywhere, or from a sensitivity scan.")] = None,
    finetune_epochs: FinetuneOpt = None, max_drop: MaxDropOpt = None, *, common: Common,
) -> None:
    """Quantize weights: train per the recipe (or load --checkpoint), quantize, fine-tune, evaluate."""
    options = {"bits": bits, "method": method, "granularity": granularity, "execute": execute_as,
               "observer": observer, "range": range_, "allocation": allocation}
    _run_compression("quantize", options, finetune_epochs, max_drop, common)


def _run_compression(stage: str, options: dict[str, Any], finetune_epochs: int | None, max_drop: float | None,
                     common: Common) -> None:
    from compress.presets import compression

    amount = options.get("rate" if stage == "prune" else "bits")
    search = stage == "prune" and amount is None and (max_drop is not None or options.get("target_speedup"))
    edit = compression(stage, options, finetune_epochs, common.checkpoint is not None, search=search)
    if max_drop is not None:
        common.sets = [f"constraints.max_accuracy_drop={max_drop}", *common.sets]
    check_outputs(common)
    execute(build_recipe(common, edit, subfolder=stage), common)
