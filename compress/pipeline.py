"""Runs a recipe: set up, run each stage, measure each state, write the artifact. Orchestration only.

Model loading lives in ``models.load``, methods behind ``methods.apply``, measuring in
``measure``, the artifact's bytes in ``artifact.write``; the output folder is checked and locked
before anything is computed.
"""
from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from compress import methods
from compress.artifact.write import write as write_artifact
from compress.budget import Budget, stage_budget
from compress.context import Progress, RunContext, resolve_device
from compress.data import Dataset, load_dataset
from compress.distributed import join, launched
from compress.files import FolderLock, check_output_file, write_atomic
from compress.layers import layer_stats, weight_shapes
from compress.measure import encoding, export_row, measure
from compress.models import check_fits, load_model, module_versions, pretrained
from compress.models.load import Opened, open_checkpoint
from compress import execution
from compress.export import export
from compress.recipe.base import EvaluateConfig, ExportConfig, FinetuneConfig, TrainConfig
from compress.recipe.methods import ChannelPrune, MethodConfig, PruneBase, QuantizeBase
from compress.recipe.schema import Recipe, Stage
from compress.report import Report, Row
from compress.state import PipelineState
from compress.training import check_precision, fit

RESULT = "model.mzip"
OVER_BUDGET = "model.over-budget.mzip"  # the artifact's name when the accuracy budget was not met


@dataclass
class RunResult:
    report: Report
    model: torch.nn.Module
    state: PipelineState
    output: Path | None


def run(recipe: Recipe, *, progress: Progress | None = None, write: bool = True,
        protect: tuple[Path, ...] = ()) -> RunResult:
    """Run ``recipe`` end to end; write ``<output>/model.mzip`` unless ``write`` is false.

    ``protect``: further files the outputs must never replace (the recipe file, say).
    """
    torch.manual_seed(recipe.seed)
    device = resolve_device(recipe.device, int(os.environ.get("LOCAL_RANK", "0")) if launched() else None)
    dist = join(device)  # under torchrun: this rank's place in the job (None for a single process)
    ctx = RunContext(device, recipe.seed, progress or Progress(), dist)
    write = write and (dist is None or dist.main)  # rank 0 alone writes
    lock = _claim_output(recipe, protect) if write else None
    try:
        opened = open_checkpoint(recipe.model)  # a bad checkpoint is said before any data is loaded
        ctx.progress.note(f"loading dataset '{recipe.data.name}'")
        data = load_dataset(recipe.data, pretrained.preprocess(recipe.model), pin_memory=device.type == "cuda")
        state = init_state(recipe, data, ctx, opened)
        _preflight(recipe, state)
        report = Report(recipe.model.name, recipe.data.name, str(ctx.device))
        baseline = _run_stages(recipe, state, report)
        report.notes.extend(state.notes)
        report.search = list(state.search)
        report.finalize(baseline, recipe.constraints.max_accuracy_drop, speed_target(recipe))
        out_path = _write_output(recipe, state, report) if write else None
    finally:
        if lock is not None:
            lock.release()
    return RunResult(report, state.model, state, out_path)


def output_names(recipe: Recipe) -> tuple[str, ...]:
    """Every file a run may write in its output folder: the artifact (either name) and its exports."""
    suffixes = [s.config.suffix for s in recipe.pipeline if isinstance(s.config, ExportConfig)]
    return tuple(f"{Path(name).stem}{suffix}" if suffix else name
                 for name in (RESULT, OVER_BUDGET) for suffix in ("", *suffixes))


def _claim_output(recipe: Recipe, protect: tuple[Path, ...]) -> FolderLock:
    """Check every possible output path and lock the folder, before any compute."""
    folder = Path(recipe.output)
    inputs = (*protect, *([Path(recipe.model.checkpoint)] if recipe.model.checkpoint else []))
    names = output_names(recipe)
    for name in names:
        check_output_file(folder / name, "output", inputs)
    return FolderLock(folder, names).acquire()


def init_state(recipe: Recipe, data: Dataset, ctx: RunContext, opened: Opened = None) -> PipelineState:
    """The starting model (built, from a checkpoint, or from an artifact), checked against the data."""
    loaded = load_model(recipe.model, data.num_classes, data.input_shape[0], ctx.device, opened)
    check_fits(loaded.model, data.test.head(2).x.to(ctx.device), data.num_classes, loaded.spec.name)
    state = PipelineState(loaded.model, loaded.spec, data, ctx, data.eval_batch_size, grids=loaded.grids)
    if loaded.execute:
        state.execute = loaded.execute
        state.runtime = execution.rebuild(loaded.model, loaded.execute)
    state.file_bytes = loaded.file_bytes
    return state


def _preflight(recipe: Recipe, state: PipelineState) -> None:
    """Each method's refusals about this model (patterns naming nothing, graphs it cannot cut), before training."""
    example = state.data.test.head(1).x.to(state.ctx.device)
    for stage in recipe.pipeline:
        if isinstance(stage.config, TrainConfig):
            check_precision(stage.config.precision, state.ctx.device, stage.kind)
        if isinstance(stage.config, MethodConfig):
            methods.check(state.model, stage.config, example, state.ctx)


Handler = Callable[[PipelineState, Stage, Report, Budget | None], None]


def _run_stages(recipe: Recipe, state: PipelineState, report: Report) -> int:
    """Run every stage, adding a row per new model state; return the baseline row's index."""
    first = recipe.first_compression()
    evaluations = [s.config for s in recipe.pipeline if isinstance(s.config, EvaluateConfig)] or [EvaluateConfig()]
    state.latency = (evaluations[0].latency_batch_size, evaluations[0].latency_repeats)
    state.split = evaluations[-1].split
    if recipe.model.checkpoint or recipe.pipeline[0].kind != "train":
        start = "checkpoint" if recipe.model.checkpoint else "pretrained" if recipe.model.weights else "init"
        report.rows.append(measure(state, start))
    baseline, before = 0, None
    last_change = max((i for i, s in enumerate(recipe.pipeline) if s.kind not in ("evaluate", "export")),
                      default=-1)
    state.observer = next((s.config.observer for s in recipe.pipeline if isinstance(s.config, QuantizeBase)),
                          "minmax")
    state.int8_planned = any(isinstance(s.config, QuantizeBase) and s.config.execute == "int8" for s in recipe.pipeline)
    for i, stage in enumerate(recipe.pipeline):
        if i == first:
            baseline, before = len(report.rows) - 1, weight_shapes(state.model)
            if any(_distills(s) for s in recipe.pipeline[i:]):
                state.teacher = copy.deepcopy(state.model).eval().requires_grad_(False)
        budget = None
        if first is not None and i >= first and report.rows:
            base = report.rows[max(baseline, 0)]
            budget = stage_budget(recipe, i, base.accuracy, base.split)
        if stage.kind != "evaluate":
            state.ctx.progress.note(f"stage {i + 1}/{len(recipe.pipeline)}: {stage.kind}")
        _STAGES[stage.kind](state, stage, report, budget)
        if i == last_change and state.pending_int8 is not None:
            report.rows.append(_to_int8(state))
            state.notes.extend(_slower_note(report.rows[-2], report.rows[-1]))
    if before is not None:
        report.layers = layer_stats(before, state.model, state.bits)
    return max(baseline, 0) if first is not None else 0


def _train(state: PipelineState, stage: Stage, report: Report, budget: Budget | None) -> None:
    """``train`` and ``finetune``: the one loop; the hooks keep pruned weights and grids in place."""
    cfg = stage.config
    assert isinstance(cfg, TrainConfig)
    start = time.perf_counter()
    fit(state.model, state.data, cfg, state.ctx, label=stage.kind, hooks=state.hooks, teacher=state.teacher)
    state.changed()
    report.rows.append(measure(state, stage.kind, seconds=time.perf_counter() - start))


def _compress(state: PipelineState, stage: Stage, report: Report, budget: Budget | None) -> None:
    """``prune`` and ``quantize``: the method the config names, through its narrow contract."""
    cfg = stage.config
    assert isinstance(cfg, MethodConfig)
    start = time.perf_counter()
    state.merge(methods.apply(state.model, cfg, state.workspace(budget)))
    report.rows.append(measure(state, stage.kind, seconds=time.perf_counter() - start))


def _evaluate(state: PipelineState, stage: Stage, report: Report, budget: Budget | None) -> None:
    """Re-measure the current state with this stage's settings (it replaces the last row)."""
    cfg = stage.config
    assert isinstance(cfg, EvaluateConfig)
    last = report.rows.pop() if report.rows else None
    label, seconds = (last.stage, last.seconds or 0.0) if last else ("evaluate", 0.0)
    report.rows.append(measure(state, label, cfg, seconds=seconds))


def _export(state: PipelineState, stage: Stage, report: Report, budget: Budget | None) -> None:
    """Export the model as it is now and verify the export in its runtime (written beside the artifact)."""
    cfg = stage.config
    assert isinstance(cfg, ExportConfig)
    exported = export(state.model, cfg, state.data.test.head(1).x, state.data.train, state.ctx,
                      cfg.observer or state.observer)
    split = report.rows[-1].split if report.rows else "test"
    report.exports.append(export_row(state, exported, split))
    state.exports.append(exported)


_STAGES: dict[str, Handler] = {"train": _train, "finetune": _train, "prune": _compress, "quantize": _compress,
                               "evaluate": _evaluate, "export": _export}


def _distills(stage: Stage) -> bool:
    cfg = stage.config
    ft = cfg.finetune if isinstance(cfg, PruneBase) else cfg
    return isinstance(ft, FinetuneConfig) and ft.distill > 0


def _to_int8(state: PipelineState) -> Row:
    assert state.pending_int8 is not None
    start = time.perf_counter()
    state.ctx.progress.note("converting to int8 execution")
    state.runtime, state.execute, note = execution.convert(state.model, state.pending_int8, state.data, state.ctx)
    state.notes.append(note)
    state.pending_int8, state.file_bytes = None, None
    return measure(state, "int8", seconds=time.perf_counter() - start)


def _slower_note(before: Row, after: Row) -> list[str]:
    """Say so when int8 execution made the model slower (layers int8 cannot run cost a
    quantize/dequantize pair each: measured 2.4× slower on a ShuffleNet)."""
    if not (before.latency_ms and after.latency_ms) or after.latency_ms <= before.latency_ms:
        return []
    return [f"int8 execution is {after.latency_ms / before.latency_ms:.1f}× SLOWER than float here "
            f"({after.latency_ms:.3g} vs {before.latency_ms:.3g} ms at batch {after.latency_batch}): the ops int8 "
            "cannot run cost a quantize/dequantize each; leave execute unset to ship the float model"]


def _write_output(recipe: Recipe, state: PipelineState, report: Report) -> Path:
    """Write the artifact once, with the recipe and the (timing-free) report inside."""
    met = report.constraint is None or report.constraint.met
    path = Path(recipe.output) / (RESULT if met else OVER_BUDGET)  # an over-budget file never passes for a result
    report.output = str(path)
    for exported, row in zip(state.exports, report.exports, strict=True):
        row.file = str(path.with_name(f"{path.name.removesuffix('.mzip')}{exported.suffix}"))
        write_atomic(Path(row.file), exported.data)
    # the recipe as written (defaults left out: the file names the modelzip version that fills them in) — on a
    # 10 KB LeNet the full dump was 2.2 KB of JSON, a fifth of the file
    size = write_artifact(path, encoding(state), state.spec, recipe=recipe.as_written(),
                          report=report.stored(), execute=state.execute, versions=module_versions(state.model))
    report.final.size_bytes = size
    report.finalize(report.baseline, recipe.constraints.max_accuracy_drop, speed_target(recipe))
    return path


def speed_target(recipe: Recipe) -> tuple[float, str] | None:
    """A channel search's speed target and objective, when the recipe has one."""
    return next(((s.config.target_speedup, s.config.objective) for s in recipe.pipeline
                 if isinstance(s.config, ChannelPrune) and s.config.target_speedup is not None), None)
