"""Recipe schema and loading."""
from compress.recipe.loader import apply_override, load_recipe, read_yaml, validate
from compress.recipe.schema import (
    Constraints, DataConfig, EvaluateConfig, FinetuneConfig, ModelConfig, PruneConfig,
    QuantizeConfig, Recipe, Stage, TrainConfig,
)

__all__ = [
    "Constraints", "DataConfig", "EvaluateConfig", "FinetuneConfig", "ModelConfig", "PruneConfig",
    "QuantizeConfig", "Recipe", "Stage", "TrainConfig", "apply_override", "load_recipe",
    "read_yaml", "validate",
]
