"""Runs a recipe: build/load the model, run each stage, measure each state, write the artifact."""
from __future__ import annotations

import copy
import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from compress import artifact
from compress.context import Progress, RunContext, resolve_device
from compress.data import Dataset, load_dataset
from compress.errors import InputError
from compress.evaluate import evaluate, measure_latency
from compress.layers import count_macs, count_nonzero, layer_stats, weight_shapes
from compress.models import build_model, load_state, read_checkpoint, resolve_kwargs
from compress.recipe.schema import EvaluateConfig, FinetuneConfig, PruneConfig, QuantizeConfig, Recipe, Schema, Stage
from compress.registry import Registry
from compress.report import Report, Row
from compress.training import TrainHook

COMPRESSION_STAGES = ("prune", "quantize")
OVER_BUDGET = "model.over-budget.mzip"  # the artifact's name when the accuracy budget was not met


@dataclass(frozen=True)
class Budget:
    """What a budget search must keep: accuracy ≥ ``floor`` (%) on ``split``."""

    floor: float
    split: str


@dataclass
class PipelineState:
    """What stages read and change: the model and the invariants later training must keep."""

    model: nn.Module
    spec: artifact.ModelSpec
    data: Dataset
    ctx: RunContext
    eval_batch_size: int
    grids: dict[str, artifact.LinearGrid] = field(default_factory=dict)
    bits: dict[str, float] = field(default_factory=dict)  # weight name → stored bits (quantized layers)
    pending_int8: QuantizeConfig | None = None  # int8 execution asked for; converted after the last training
    runtime: nn.Module | None = None  # what runs for evaluation (int8), when it is not ``model`` itself
    execute: dict[str, Any] | None = None  # the runtime's plan, stored in the artifact
    budget: Budget | None = None  # set for compression stages when the recipe has an accuracy budget
    search: list[dict[str, Any]] = field(default_factory=list)  # the trials of a budget search
    teacher: nn.Module | None = None  # the model before compression, when a fine-tuning distills from it
    hooks: list[TrainHook] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


StageHandler = Callable[[PipelineState, Schema], None]
STAGES: Registry[StageHandler] = Registry("stage")


@dataclass
class RunResult:
    report: Report
    model: nn.Module
    state: PipelineState
    output: Path | None


def run(recipe: Recipe, *, progress: Progress | None = None, write: bool = True) -> RunResult:
    """Run ``recipe`` end to end; write ``<output>/model.mzip`` unless ``write`` is false."""
    from compress import stages  # noqa: F401  (registers the stage handlers)

    torch.manual_seed(recipe.seed)
    ctx = RunContext(resolve_device(recipe.device), recipe.seed, progress or Progress())
    out_path = Path(recipe.output) / "model.mzip"
    if write:
        _check_output(recipe, out_path)
    ctx.progress.note(f"loading dataset '{recipe.data.name}'")
    state = init_state(recipe, load_dataset(recipe.data), ctx)
    report = Report(recipe.model.name, recipe.data.name, str(ctx.device))
    baseline = _run_stages(recipe, state, report)
    report.notes.extend(state.notes)
    report.search = state.search
    report.finalize(baseline, recipe.constraints.max_accuracy_drop)
    if write:
        if report.constraint is not None and not report.constraint.met:
            out_path = out_path.with_name(OVER_BUDGET)  # never mistaken for a result that passed its gate
            _check_output(recipe, out_path)
        _write_output(recipe, state, report, out_path)
    return RunResult(report, state.model, state, out_path if write else None)


def _run_stages(recipe: Recipe, state: PipelineState, report: Report) -> int:
    """Run every stage, adding a row per new model state; return the baseline row's index."""
    kinds = [s.kind for s in recipe.pipeline]
    first_compression = next((i for i, k in enumerate(kinds) if k in COMPRESSION_STAGES), None)
    if recipe.model.checkpoint or kinds[0] != "train":
        report.rows.append(measure(state, "checkpoint" if recipe.model.checkpoint else "init"))
    baseline, before = 0, None
    last_change = max((i for i, k in enumerate(kinds) if k != "evaluate"), default=-1)
    for i, stage in enumerate(recipe.pipeline):
        if i == first_compression:
            baseline, before = len(report.rows) - 1, weight_shapes(state.model)
            if any(_distills(s) for s in recipe.pipeline[i:]):
                state.teacher = copy.deepcopy(state.model).eval().requires_grad_(False)
        if first_compression is not None and i >= first_compression and report.rows:
            state.budget = stage_budget(recipe, i, report.rows[max(baseline, 0)])
        if stage.kind == "evaluate":  # re-measure the current state with this stage's settings
            cfg = stage.config
            if not isinstance(cfg, EvaluateConfig):
                raise TypeError(f"evaluate stage carries {type(cfg).__name__}")
            last = report.rows.pop() if report.rows else None
            report.rows.append(measure(state, last.stage if last else "evaluate", cfg,
                                       seconds=last.seconds if last else 0.0))
            continue
        state.ctx.progress.note(f"stage {i + 1}/{len(kinds)}: {stage.kind}")
        start = time.perf_counter()
        STAGES.get(stage.kind)(state, stage.config)
        report.rows.append(measure(state, stage.kind, seconds=time.perf_counter() - start))
        if i == last_change and state.pending_int8 is not None:
            report.rows.append(_to_int8(state, state.pending_int8))
    if before is not None:
        report.layers = layer_stats(before, state.model, state.bits)
    return max(baseline, 0) if first_compression is not None else 0


def _distills(stage: Stage) -> bool:
    cfg = stage.config
    ft = cfg.finetune if isinstance(cfg, PruneConfig) else cfg
    return isinstance(ft, FinetuneConfig) and ft.distill > 0


def searches(stage: Stage) -> bool:
    """True for a compression stage that leaves its amount to a budget search (no rate / no bits)."""
    cfg = stage.config
    return (isinstance(cfg, PruneConfig) and cfg.rate is None) or (isinstance(cfg, QuantizeConfig) and cfg.bits is None)


def stage_budget(recipe: Recipe, index: int, base: Row) -> Budget | None:
    """The accuracy floor stage ``index`` may search down to.

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
    return Budget(base.accuracy - drop, base.split)


def _to_int8(state: PipelineState, cfg: QuantizeConfig) -> Row:
    from compress.quantize import int8

    start = time.perf_counter()
    state.ctx.progress.note("converting to int8 execution")
    state.runtime, state.execute = int8.convert(state.model, cfg, state.data, state.ctx)
    state.pending_int8 = None
    return measure(state, "int8", seconds=time.perf_counter() - start)


def init_state(recipe: Recipe, data: Dataset, ctx: RunContext) -> PipelineState:
    """Build the model from the recipe, or load it from ``model.checkpoint``."""
    ckpt = Path(recipe.model.checkpoint) if recipe.model.checkpoint else None
    if ckpt is not None and artifact.is_artifact(ckpt):
        art = artifact.read(ckpt)
        model = artifact.build(art, ctx.device, trust_model_code=recipe.model.trust_checkpoint)
        state = PipelineState(model, art.spec, data, ctx, recipe.data.eval_batch_size, grids=dict(art.grids))
        if art.manifest.get("execute"):
            from compress.quantize import int8

            state.execute = art.manifest["execute"]
            state.runtime = int8.rebuild(model, state.execute)
        return state
    kwargs = resolve_kwargs(recipe.model.name, recipe.model.kwargs, data.num_classes, data.input_shape[0])
    spec = artifact.ModelSpec(recipe.model.name, kwargs)
    model = build_model(spec.name, kwargs)
    if ckpt is not None:
        loaded = read_checkpoint(ckpt, trust=recipe.model.trust_checkpoint)
        if isinstance(loaded, nn.Module):
            model = loaded
        else:
            load_state(model, loaded, str(ckpt))
    return PipelineState(model.to(ctx.device).eval(), spec, data, ctx, recipe.data.eval_batch_size)


def measure(state: PipelineState, label: str, cfg: EvaluateConfig | None = None, seconds: float = 0.0) -> Row:
    """Accuracy, size, sparsity and latency of the current model state."""
    cfg = cfg or EvaluateConfig()
    model, ctx = state.model, state.ctx
    runner, device = (state.runtime, torch.device("cpu")) if state.runtime is not None else (model, ctx.device)
    res = evaluate(runner, state.data.split(cfg.split), state.eval_batch_size, device)
    params = sum(p.numel() for p in model.parameters())
    nonzero = count_nonzero(model.parameters())
    size = len(artifact.to_bytes(cpu_state(model), state.spec, grids=state.grids, execute=state.execute))
    example = state.data.test.x[:cfg.latency_batch_size]
    latency = measure_latency(runner, example, cfg.latency_batch_size, device, repeats=cfg.latency_repeats)
    return Row(label, round(res.accuracy, 4), round(res.loss, 6), cfg.split, params, nonzero, size,
               round(latency * 1e3, 4), cfg.latency_batch_size, seconds=round(seconds, 3),
               state_dict_bytes=fp32_state_dict_bytes(model), macs=count_macs(model, example.to(ctx.device)))


def cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def fp32_state_dict_bytes(model: nn.Module) -> int:
    """Size of ``torch.save(state_dict)`` with floating tensors in fp32 — the reference size."""
    buf = io.BytesIO()
    torch.save({k: v.float() if v.is_floating_point() else v for k, v in cpu_state(model).items()}, buf)
    return buf.tell()


def _check_output(recipe: Recipe, out_path: Path) -> None:
    if recipe.model.checkpoint and Path(recipe.model.checkpoint).resolve() == out_path.resolve():
        raise InputError(f"output {out_path} is the input checkpoint; modelzip never overwrites its input",
                         "choose another output folder (--output)")


def _write_output(recipe: Recipe, state: PipelineState, report: Report, out_path: Path) -> None:
    """Write the artifact with the report inside; the final row's size is the file's own size."""
    report.output = str(out_path)
    encoded = artifact.encode_state(cpu_state(state.model), state.grids)
    payload = b""
    for _ in range(4):  # the report holds the file size, which depends on the report: iterate to a fixpoint
        report.final.size_bytes = len(payload) or report.final.size_bytes
        report.finalize(report.baseline, recipe.constraints.max_accuracy_drop)
        payload = artifact.assemble(encoded, state.spec, recipe=recipe.model_dump(mode="json"),
                                    report=report.to_dict(), execute=state.execute)
        if len(payload) == report.final.size_bytes:
            break
    artifact.write_atomic(out_path, payload)
    report.final.size_bytes = out_path.stat().st_size
    report.finalize(report.baseline, recipe.constraints.max_accuracy_drop)
