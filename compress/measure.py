"""Measuring a model state for the report: accuracy, size, sparsity, MACs, latency."""
from __future__ import annotations

import io

import torch
import torch.nn as nn

from compress import artifact
from compress.evaluate import evaluate, measure_latency
from compress.layers import count_macs, count_nonzero
from compress.recipe.base import EvaluateConfig
from compress.export import Exported
from compress.report import ExportRow, Row
from compress.state import PipelineState


def cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def fp32_state_dict_bytes(model: nn.Module) -> int:
    """Size of ``torch.save(state_dict)`` with floating tensors in fp32 — the reference size."""
    buf = io.BytesIO()
    torch.save({k: v.float() if v.is_floating_point() else v for k, v in cpu_state(model).items()}, buf)
    return buf.tell()


def encoding(state: PipelineState) -> artifact.Encoded:
    """The model's tensors as the artifact stores them (cached until the model changes)."""
    if state.encoded is None:
        state.encoded = artifact.encode_state(cpu_state(state.model), state.grids)
    return state.encoded


def artifact_bytes(state: PipelineState) -> int:
    """Bytes of this state's artifact without recipe and report (the file's, while it is unchanged)."""
    if state.file_bytes is not None:
        return state.file_bytes
    return len(artifact.assemble(encoding(state), state.spec, execute=state.execute))


def measure(state: PipelineState, label: str, cfg: EvaluateConfig | None = None, seconds: float = 0.0) -> Row:
    """Accuracy, size, sparsity and latency of the current model state."""
    # rows of other stages: the split and latency settings of the recipe's evaluate stage (a recipe tuned on the
    # validation split shows validation figures throughout; its final evaluate on test, test throughout)
    cfg = cfg or EvaluateConfig(split=state.split, latency_batch_size=state.latency[0],
                                latency_repeats=state.latency[1])
    model, ctx = state.model, state.ctx
    runner, device = (state.runtime, torch.device("cpu")) if state.runtime is not None else (model, ctx.device)
    res = evaluate(runner, state.data.split(cfg.split), state.eval_batch_size, device, state.ctx.dist,
                   state.ctx.progress)
    params = sum(p.numel() for p in model.parameters())
    nonzero = count_nonzero(model.parameters())
    example = state.data.test.head(cfg.latency_batch_size).x
    latency = measure_latency(runner, example, cfg.latency_batch_size, device, repeats=cfg.latency_repeats)
    return Row(label, round(res.accuracy, 4), round(res.loss, 6), cfg.split, params, nonzero, artifact_bytes(state),
               round(latency * 1e3, 4), cfg.latency_batch_size, seconds=round(seconds, 3),
               state_dict_bytes=fp32_state_dict_bytes(model), macs=count_macs(model, example.to(ctx.device)))


def export_row(state: PipelineState, exported: Exported, split: str) -> ExportRow:
    """Run an export in its own runtime: accuracy on ``split``, largest logit difference from the PyTorch
    model, latency at batch 1 and at the config's batch, file size."""
    cfg, runner, cpu = exported.config, exported.runner, torch.device("cpu")
    data = state.data.split(split)
    res = evaluate(runner, data, state.eval_batch_size, cpu, state.ctx.dist)
    x = data.head(256).x
    with torch.inference_mode():
        reference = state.model.cpu().eval()(x)
        diff = float((runner(x) - reference).abs().max())
    state.model.to(state.ctx.device)
    example = state.data.test.head(cfg.latency_batch_size).x
    one = measure_latency(runner, example[:1], 1, cpu) if cfg.fixed_batch in (None, 1) else None
    many = measure_latency(runner, example, cfg.latency_batch_size, cpu)
    return ExportRow(cfg.label, exported.runtime, round(res.accuracy, 4), split, round(diff, 6),
                     None if one is None else round(one * 1e3, 4), round(many * 1e3, 4), cfg.latency_batch_size,
                     len(exported.data))
