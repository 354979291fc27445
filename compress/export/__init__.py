"""Export: the model as a deployment runtime takes it — ONNX (float or int8 through ONNX Runtime) or a
``torch.export`` program — together with a runner that executes it in that runtime, so every export
is verified by running it (:func:`compress.measure.export_row`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from compress.context import RunContext
from compress.data import Samples, iter_batches
from compress.export import onnx, pt2
from compress.recipe.base import ExportConfig

__all__ = ["Exported", "calibration_batches", "export"]


@dataclass
class Exported:
    """One exported model: its bytes, a runner in its runtime, and the runtime's name."""

    config: ExportConfig
    data: bytes
    runner: nn.Module
    runtime: str

    @property
    def suffix(self) -> str:
        return self.config.suffix


class FixedBatch(nn.Module):
    """Runs a fixed-batch export on any number of inputs: split into that batch, the last one padded."""

    def __init__(self, runner: nn.Module, batch: int) -> None:
        super().__init__()
        self.runner, self.batch = runner, batch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for start in range(0, len(x), self.batch):
            chunk = x[start:start + self.batch]
            pad = self.batch - len(chunk)
            if pad:
                chunk = torch.cat([chunk, chunk[:1].expand(pad, *chunk.shape[1:])])
            outs.append(self.runner(chunk)[:self.batch - pad])
        return torch.cat(outs)


def calibration_batches(train: Samples, batches: int, ctx: RunContext) -> list[torch.Tensor]:
    """``batches`` shuffled training batches of 128 (the run's seed): what int8 activations are calibrated on."""
    out = []
    for i, (x, _) in enumerate(iter_batches(train, 128, shuffle=True, generator=ctx.generator(offset=5))):
        if i >= batches:
            break
        out.append(x)
    return out


def export(model: nn.Module, cfg: ExportConfig, example: torch.Tensor, train: Samples, ctx: RunContext,
           observer: str) -> Exported:
    """Export ``model`` (left unchanged) per ``cfg``; ``train`` calibrates an int8 export."""
    model = model.eval()
    if cfg.format == "pt2":
        data = pt2.to_pt2(model, example, cfg.fixed_batch)
        runner, runtime = pt2.load(data), f"torch.export {torch.__version__.split('+')[0]}"
    else:
        data = onnx.to_onnx(model, example, cfg.fixed_batch, cfg.opset)
        if cfg.int8:
            batches = calibration_batches(train, cfg.calibration_batches, ctx)
            if cfg.fixed_batch is not None:
                batches = [b for x in batches for b in _chunks(x, cfg.fixed_batch)]
            data, _ = onnx.quantize(data, batches, observer)
        runner, runtime = onnx.OrtModule(data), f"onnxruntime {onnx.require().__version__}"
    if cfg.fixed_batch is not None:
        runner = FixedBatch(runner, cfg.fixed_batch)
    return Exported(cfg, data, runner, runtime)


def _chunks(x: torch.Tensor, batch: int) -> list[torch.Tensor]:
    whole = [x[i * batch:(i + 1) * batch] for i in range(math.floor(len(x) / batch))]
    return whole or [x[:1].expand(batch, *x.shape[1:]).contiguous()]
