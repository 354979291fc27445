"""Model registry, builder, checkpoint handling and loading a run's starting model."""
from compress.models.build import build_model, check_model_name, resolve_kwargs, untrusted_reason
from compress.models.checkpoint import load_state, read_checkpoint
from compress.models.load import Loaded, check_fits, load_artifact, load_model, module_versions
from compress.models.resize import fit_to_shapes, sync_attributes
from compress.models.zoo import MODELS

__all__ = ["MODELS", "Loaded", "build_model", "check_fits", "check_model_name", "fit_to_shapes", "load_artifact",
           "load_model", "load_state", "module_versions", "read_checkpoint", "resolve_kwargs", "sync_attributes",
           "untrusted_reason"]
