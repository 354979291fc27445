"""Recipe schema and loading (leaf data: imports nothing above the error/registry layer)."""
from compress.recipe.base import (
    Constraints, DataConfig, EvaluateConfig, ExportConfig, FinetuneConfig, ModelConfig, Schema, TrainConfig,
)
from compress.recipe.loader import apply_override, load_recipe, read_text, read_yaml, validate
from compress.recipe.methods import (
    METHOD_CONFIGS, PRUNE_METHODS, QUANTIZE_METHODS, ChannelPrune, Importance, KMeansQuantize, LinearQuantize,
    MethodConfig, PruneBase, PruneConfig, QuantizeBase, QuantizeConfig, UnstructuredPrune,
)
from compress.recipe.schema import COMPRESSION_STAGES, STAGE_NAMES, Recipe, Stage, searches

__all__ = [
    "COMPRESSION_STAGES", "METHOD_CONFIGS", "PRUNE_METHODS", "QUANTIZE_METHODS", "STAGE_NAMES", "ChannelPrune",
    "Constraints", "DataConfig", "EvaluateConfig", "ExportConfig", "FinetuneConfig", "Importance", "KMeansQuantize",
    "LinearQuantize", "MethodConfig", "ModelConfig", "PruneBase", "PruneConfig", "QuantizeBase", "QuantizeConfig",
    "Recipe", "Schema", "Stage", "TrainConfig", "UnstructuredPrune", "apply_override", "load_recipe", "read_text",
    "read_yaml", "searches", "validate",
]
