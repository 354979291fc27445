"""The small public API: ``run``, ``save``, ``load`` (``load_recipe`` lives in compress.recipe)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from compress import artifact
from compress.artifact import LinearGrid, ModelSpec
from compress.pipeline import RunResult, cpu_state
from compress.pipeline import run as _run
from compress.recipe.schema import Recipe

__all__ = ["load", "run", "save"]


def run(recipe: Recipe, **kwargs: Any) -> RunResult:
    """Run a validated recipe end to end (see :func:`compress.pipeline.run`)."""
    return _run(recipe, **kwargs)


def save(model: nn.Module, path: str | Path, spec: ModelSpec | str, *,
         grids: dict[str, LinearGrid] | None = None, recipe: dict[str, Any] | None = None,
         report: dict[str, Any] | None = None) -> int:
    """Write ``model`` as a compressed artifact (atomically); return the file's size in bytes.

    ``spec`` names the architecture (``"lenet-300-100"`` or a :class:`ModelSpec` with kwargs);
    ``grids`` gives integer grids for quantized weights, so they are stored as packed codes.
    """
    spec = ModelSpec(spec) if isinstance(spec, str) else spec
    path = Path(path)
    artifact.write_atomic(path, artifact.to_bytes(cpu_state(model), spec, grids=grids,
                                                  recipe=recipe, report=report))
    return path.stat().st_size


def load(path: str | Path, device: str | torch.device = "cpu", trust_model_code: bool = False,
         execute: bool = True) -> nn.Module:
    """Load an artifact as a ready-to-run ``nn.Module`` in eval mode. Never unpickles anything.

    An artifact written with int8 execution comes back as the identical int8 CPU model unless
    ``execute`` is false (then: the float model with the same stored weights, on ``device``).
    """
    art = artifact.read(Path(path))
    model = artifact.build(art, device if not (execute and art.manifest.get("execute")) else "cpu",
                           trust_model_code=trust_model_code)
    if execute and art.manifest.get("execute"):
        from compress.quantize import int8

        return int8.rebuild(model, art.manifest["execute"])
    return model
