"""modelzip: make trained PyTorch classifiers smaller and faster while keeping their accuracy.

Public API::

    recipe = compress.load_recipe("configs/quickstart.yaml", overrides=["train.epochs=1"])
    result = compress.run(recipe)
    compress.save(model, "model.mzip", spec="mnist-cnn")
    model = compress.load("model.mzip")
"""
__version__ = "0.1.0"

from compress.api import load, run, save  # noqa: E402
from compress.errors import ModelzipError  # noqa: E402
from compress.recipe import load_recipe  # noqa: E402

__all__ = ["ModelzipError", "__version__", "load", "load_recipe", "run", "save"]
