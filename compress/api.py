"""The small public API: ``load_recipe``, ``run``, ``save``, ``load``."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from compress import execution
from compress.artifact import LinearGrid, ModelSpec
from compress.artifact.write import write_state
from compress.data import DATASETS
from compress.measure import cpu_state
from compress.models import check_model_name, load_artifact, module_versions
from compress.pipeline import RunResult
from compress.pipeline import run as _run
from compress.recipe import Recipe
from compress.recipe import load_recipe as _load_recipe

__all__ = ["catalogue", "load", "load_recipe", "run", "save"]


def catalogue() -> dict[str, Any]:
    """The registered names a recipe is checked against (pydantic validation context)."""
    return {"datasets": list(DATASETS.names()), "check_model": check_model_name}


def load_recipe(source: str | Path | dict[str, Any], overrides: list[str] | tuple[str, ...] = (),
                name: str | None = None) -> Recipe:
    """Read a recipe (YAML path or mapping), apply ``--set``-style overrides, validate it — every problem
    at once, dataset and model names included (:class:`compress.errors.RecipeError`)."""
    return _load_recipe(source, overrides, name, context=catalogue())


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
    return write_state(Path(path), cpu_state(model), spec, grids=grids, recipe=recipe, report=report,
                       versions=module_versions(model))


def load(path: str | Path, device: str | torch.device = "cpu", trust_model_code: bool = False,
         execute: bool = True) -> nn.Module:
    """Load an artifact as a ready-to-run ``nn.Module`` in eval mode. Never unpickles anything, and
    imports or downloads nothing the file names unless ``trust_model_code``.

    An artifact written with int8 execution comes back as the identical int8 CPU model unless
    ``execute`` is false (then: the float model with the same stored weights, on ``device``).
    """
    loaded = load_artifact(Path(path), "cpu", trust=trust_model_code)
    if execute and loaded.execute:
        return execution.rebuild(loaded.model, loaded.execute)
    return loaded.model.to(device).eval()
