"""Model registry, builder and checkpoint handling."""
from compress.models.build import build_model, check_model_name, resolve_kwargs
from compress.models.checkpoint import fit_to_shapes, load_state, read_checkpoint
from compress.models.zoo import MODELS

__all__ = ["MODELS", "build_model", "check_model_name", "fit_to_shapes", "load_state",
           "read_checkpoint", "resolve_kwargs"]
