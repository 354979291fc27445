"""Writing a run's artifact: encoded tensors + manifest (recipe, report, runtime plan), atomically."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from compress.artifact.container import Encoded, ModelSpec, assemble
from compress.files import write_atomic


def write(path: Path, encoded: Encoded, spec: ModelSpec, *, recipe: dict[str, Any] | None = None,
          report: dict[str, Any] | None = None, execute: dict[str, Any] | None = None,
          versions: dict[str, int] | None = None) -> int:
    """Assemble and write the artifact once (no tensor re-encoded); return the file's size in bytes."""
    data = assemble(encoded, spec, recipe=recipe, report=report, execute=execute, versions=versions)
    write_atomic(path, data)
    return len(data)
