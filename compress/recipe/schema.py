"""The typed recipe: every key, its type, its range and its default.

Defaults live here and in :mod:`compress.recipe.base` / :mod:`compress.recipe.methods` and
nowhere else. Unknown keys are rejected (``extra="forbid"``), every float must be finite, and
what can be checked without compute across sections (stage order, a missing amount, a
validation split that does not exist, int8 on a GPU) is checked here, before anything runs.
"""
from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from compress.recipe.base import (
    MAX_SEED, Constraints, DataConfig, EvaluateConfig, ExportConfig, FinetuneConfig, ModelConfig, Schema,
    TrainConfig, check_device,
)
from compress.recipe.methods import (
    ChannelPrune, KMeansQuantize, LinearQuantize, MethodConfig, OptionalPrune, OptionalQuantize, PruneBase,
    QuantizeBase, UnstructuredPrune,
)

STAGE_NAMES = ("train", "prune", "quantize", "finetune", "evaluate", "export")
COMPRESSION_STAGES = ("prune", "quantize")

__all__ = [
    "COMPRESSION_STAGES", "STAGE_NAMES", "ChannelPrune", "Constraints", "DataConfig", "EvaluateConfig", "ExportConfig",
    "FinetuneConfig", "KMeansQuantize", "LinearQuantize", "ModelConfig", "PruneBase", "QuantizeBase", "Recipe",
    "Schema", "Stage", "TrainConfig", "UnstructuredPrune",
]


class Stage(Schema):
    """One pipeline step: exactly one of the stage keys."""

    train: TrainConfig | None = None
    prune: OptionalPrune = None
    quantize: OptionalQuantize = None
    finetune: FinetuneConfig | None = None
    evaluate: EvaluateConfig | None = None
    export: ExportConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare_names(cls, value: Any) -> Any:
        if isinstance(value, str):  # `- evaluate` means the defaults
            return {value: {}}
        if isinstance(value, dict):
            return {k: ({} if v is None else v) for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> Stage:
        present = [n for n in STAGE_NAMES if getattr(self, n) is not None]
        if len(present) != 1:
            raise ValueError(f"a stage holds exactly one of {', '.join(STAGE_NAMES)}; got {present}")
        return self

    @property
    def kind(self) -> str:
        return next(n for n in STAGE_NAMES if getattr(self, n) is not None)

    @property
    def config(self) -> Schema:
        return getattr(self, self.kind)

    @classmethod
    def of(cls, config: Schema) -> Stage:
        """The stage holding ``config`` (the stage key follows from the config's type)."""
        kind = config.stage if isinstance(config, MethodConfig) else next(
            k for k, t in (("finetune", FinetuneConfig), ("train", TrainConfig), ("evaluate", EvaluateConfig),
                           ("export", ExportConfig)) if isinstance(config, t))
        return cls(**{kind: config})


class Recipe(Schema):
    """A whole modelzip job."""

    model: ModelConfig
    data: DataConfig = Field(default_factory=DataConfig)
    pipeline: list[Stage] = Field(min_length=1, max_length=1000)
    device: str = "auto"
    seed: int = Field(0, ge=0, le=MAX_SEED - 1000)
    output: str = "runs/modelzip"
    constraints: Constraints = Field(default_factory=Constraints)

    @field_validator("device")
    @classmethod
    def _device_form(cls, device: str) -> str:
        return check_device(device)

    @model_validator(mode="after")
    def _consistent(self) -> Recipe:
        problems = stage_problems(self)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def as_written(self) -> dict[str, Any]:
        """The recipe without its defaults (what an artifact stores), which validates back to this recipe: each
        method's discriminator is kept even at its default, since it picks the method."""
        out = self.model_dump(mode="json", exclude_defaults=True)
        for stage, dumped in zip(self.pipeline, out.get("pipeline", []), strict=True):
            if isinstance(stage.config, MethodConfig):
                key = stage.config.discriminator
                dumped.setdefault(stage.kind, {})[key] = getattr(stage.config, key)
        return out

    def first_compression(self) -> int | None:
        return next((i for i, s in enumerate(self.pipeline) if s.kind in COMPRESSION_STAGES), None)


def stage_problems(recipe: Recipe) -> list[str]:
    """Cross-stage problems as ``path: message`` lines (empty when the pipeline is consistent)."""
    problems: list[str] = []
    earlier: list[MethodConfig] = []
    budget = recipe.constraints.max_accuracy_drop is not None
    compressed, exported, labels = False, False, set()
    for i, stage in enumerate(recipe.pipeline):
        cfg, where = stage.config, f"pipeline[{i}].{stage.kind}"
        if exported and stage.kind not in ("evaluate", "export"):
            problems.append(f"{where}: an export stage exports the final model, so only evaluate or another export "
                            "may follow it; move the export stages to the end")
        exported = exported or stage.kind == "export"
        if isinstance(cfg, ExportConfig) and cfg.label in labels:
            problems.append(f"{where}: a second {cfg.label} export would write the same file; keep one")
        labels.add(cfg.label if isinstance(cfg, ExportConfig) else "")
        if isinstance(cfg, MethodConfig):
            why = cfg.conflict(earlier)
            if why:
                problems.append(f"{where}: {why}")
            searches = (isinstance(cfg, UnstructuredPrune | QuantizeBase | ChannelPrune) and budget) or (
                isinstance(cfg, ChannelPrune) and cfg.target_speedup is not None)
            amount = cfg.rate if isinstance(cfg, PruneBase) else cfg.bits  # type: ignore[attr-defined]
            if amount is None and not searches and cfg.needs_amount():
                problems.append(f"{where}: {cfg.needs_amount()}")
            if isinstance(cfg, QuantizeBase) and cfg.execute == "int8" and recipe.device not in ("auto", "cpu"):
                problems.append(f"{where}.execute: int8 runs CPU integer kernels, but device is '{recipe.device}'; "
                                "use device: cpu, or execute: float")
            earlier.append(cfg)
            compressed = True
        if isinstance(cfg, FinetuneConfig) and cfg.distill > 0 and not compressed:
            problems.append(f"{where}.distill: distillation needs the uncompressed model as teacher, so it "
                            "only works in a finetune after a prune or quantize stage")
        if isinstance(cfg, EvaluateConfig) and cfg.split == "val" and recipe.data.val_fraction <= 0:
            problems.append(f"{where}.split: there is no validation split; set data.val_fraction above 0")
    return problems


def searches(stage: Stage) -> bool:
    """True for a compression stage that leaves its amount to a budget search (no rate / no bits)."""
    cfg = stage.config
    return (isinstance(cfg, PruneBase) and cfg.rate is None and cfg.needs_amount() is not None) or (
        isinstance(cfg, QuantizeBase) and cfg.bits is None)

