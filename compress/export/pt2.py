"""``torch.export``: an ``ExportedProgram`` saved with ``torch.export.save`` (for ExecuTorch/AOTInductor)."""
from __future__ import annotations

import io
import warnings

import torch
import torch.nn as nn

from compress.errors import UnsupportedError
from compress.export.errors import explain, inputs, silenced


def to_pt2(model: nn.Module, example: torch.Tensor, batch: int | None) -> bytes:
    """The model as a saved ``ExportedProgram`` (``batch`` None: a dynamic batch dimension)."""
    model, x, shapes = inputs(model, example, batch)
    try:
        with silenced():
            program = torch.export.export(model, (x,), dynamic_shapes=shapes)
    except Exception as exc:  # noqa: BLE001 - torch.export raises many kinds; all mean "this model does not export"
        raise UnsupportedError(f"torch.export failed: {explain(exc)}",
                               "the failing code is named above: rewrite or replace it (data-dependent control flow and custom ops "
                               "do not export), or try "
                               "--format onnx") from None
    buf = io.BytesIO()
    torch.export.save(program, buf)
    return buf.getvalue()


class Pt2Module(nn.Module):
    """A saved program's module behind the plain ``nn.Module`` interface (it refuses ``.eval()`` itself)."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.export.load(io.BytesIO(data)).module()
        object.__setattr__(self, "_program", program)  # not a child: train()/eval() must not reach it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._program(x.detach().cpu())


def load(data: bytes) -> nn.Module:
    """The runnable module of a saved program (what a deployment loads)."""
    return Pt2Module(data)
