"""What both exporters share: their inputs, their silence, and their failures (often pages of graph)
turned into one line that names the op and the code."""
from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_WHERE = re.compile(r'File "([^"]+)", line (\d+), in (\w+)')


def explain(exc: BaseException) -> str:
    """The innermost cause's first line, and where in the model's code it happened when the trace says."""
    inner = exc
    while inner.__cause__ is not None:
        inner = inner.__cause__
    lines = [line.strip() for line in _ANSI.sub("", str(inner)).splitlines() if line.strip()]
    head = lines[0][:240] if lines else ""
    text = _ANSI.sub("", f"{exc}\n{inner}")
    found = [m for m in _WHERE.finditer(text) if "site-packages" not in m[1]]  # the model's own code, not torch's
    where = f" — in {found[-1][3]}() at {Path(found[-1][1]).name}:{found[-1][2]}" if found else ""
    return f"{type(inner).__name__}: {head}{where}"


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Exporters and ONNX Runtime's quantizer print progress and log graphs; the library never prints."""
    before = logging.root.manager.disable
    logging.disable(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logging.disable(before)


def inputs(model: nn.Module, example: torch.Tensor, batch: int | None) -> tuple[nn.Module, torch.Tensor, Any]:
    """The model in eval mode on the CPU, a batch to trace with (``batch`` rows, or 2 with a dynamic
    batch: 1 would be specialised away) and the dynamic-shape spec (None for a fixed batch)."""
    shapes = None if batch is not None else ({0: torch.export.Dim("batch", min=1, max=1 << 16)},)
    x = example[:1].repeat(batch or 2, *([1] * (example.dim() - 1))).cpu()
    return model.cpu().eval(), x, shapes


@contextlib.contextmanager
def silenced() -> Iterator[None]:
    """No warnings and no output while an exporter runs."""
    with warnings.catch_warnings(), quiet():
        warnings.simplefilter("ignore")
        yield
