"""modelzip: make trained PyTorch classifiers smaller and faster while keeping their accuracy.

Public API::

    recipe = compress.load_recipe("configs/quickstart.yaml", overrides=["train.epochs=1"])
    result = compress.run(recipe)
    compress.save(model, "model.mzip", spec="mnist-cnn")
    model = compress.load("model.mzip")

The names are imported on first use, so ``import compress`` (and ``modelzip --help``) does
not pay for importing torch.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from compress.version import __version__

if TYPE_CHECKING:
    from compress.api import load, load_recipe, run, save
    from compress.errors import ModelzipError

__all__ = ["ModelzipError", "__version__", "load", "load_recipe", "run", "save"]
_LAZY = {"load": "compress.api", "load_recipe": "compress.api", "run": "compress.api", "save": "compress.api",
         "ModelzipError": "compress.errors"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'compress' has no attribute {name!r}")
