"""The typed recipe: every key, its type, its range and its default.

Defaults live here and nowhere else. Unknown keys are rejected (``extra="forbid"``).
"""
from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

STAGE_NAMES = ("train", "prune", "quantize", "finetune", "evaluate")
_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


class Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(Schema):
    """Which architecture to build and which weights to load into it."""

    name: str = Field(description="registry name, 'torchvision:<name>' or 'package.module:factory'")
    kwargs: dict[str, Any] = Field(default_factory=dict)
    checkpoint: str | None = None
    trust_checkpoint: bool = Field(False, description="allow loading a pickled nn.Module")

    @field_validator("name")
    @classmethod
    def _known_model(cls, name: str) -> str:
        from compress.models import check_model_name

        check_model_name(name)
        return name


class DataConfig(Schema):
    """Dataset, location and batching for evaluation."""

    name: str = "digits"
    root: str = "./data"
    download: bool = False
    augment: bool = Field(False, description="random crop + flip for CIFAR-like sets")
    val_fraction: float = Field(0.0, ge=0.0, lt=1.0)
    eval_batch_size: int = Field(1000, gt=0)
    image_size: int = Field(224, gt=0, description="imagefolder only")

    @field_validator("name")
    @classmethod
    def _known_dataset(cls, name: str) -> str:
        from compress.data import DATASETS

        if name not in DATASETS:
            raise ValueError(DATASETS.unknown(name))
        return name


class TrainConfig(Schema):
    """Options of the shared training loop (``train`` stage)."""

    epochs: int = Field(3, gt=0)
    batch_size: int = Field(128, gt=0)
    optimizer: Literal["sgd", "adam", "adamw"] = "adam"
    lr: float = Field(1e-3, gt=0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0)
    schedule: Literal["constant", "cosine", "step"] = "cosine"
    step_epochs: int = Field(1, gt=0, description="epochs between decays, 'step' schedule")
    gamma: float = Field(0.1, gt=0.0, le=1.0)
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)


class FinetuneConfig(TrainConfig):
    """The same loop after compression: masks and grids are kept."""

    epochs: int = Field(2, gt=0)
    lr: float = Field(1e-4, gt=0)
    distill: float = Field(0.0, ge=0.0, le=1.0, description="weight of the distillation loss towards the "
                           "model as it was before the first compression stage (0 = labels only)")
    temperature: float = Field(4.0, gt=0.0, description="softmax temperature of the distillation loss")


class PruneConfig(Schema):
    """Importance-based pruning (``prune`` stage)."""

    rate: float | None = Field(None, ge=0.0, lt=100.0, description="% of prunable weights removed "
                               "(channel granularity: % of channels)")
    method: Literal["magnitude", "random", "taylor"] = "magnitude"
    granularity: Literal["unstructured", "channel"] = "unstructured"
    scope: Literal["global", "layer"] = "global"
    allocation: Literal["uniform", "sensitivity"] = Field("uniform", description="per-layer rates: 'uniform' "
                                                          "applies rate per scope; 'sensitivity' gives each layer "
                                                          "its own rate from a per-layer sensitivity scan, with "
                                                          "rate as the weighted mean")
    schedule: Literal["oneshot", "iterative", "gradual"] = "oneshot"
    skip: list[str] = Field(default_factory=list, description="module name patterns left dense")
    layer_rates: dict[str, float] = Field(default_factory=dict)
    calibration_batches: int = Field(8, gt=0)
    min_rate: float = Field(0.0, ge=0.0, lt=100.0, description="lowest rate a budget search may return")
    iterations: int = Field(3, gt=0, description="prune/fine-tune cycles, 'iterative'")
    update_every: int = Field(50, gt=0, description="steps between mask updates, 'gradual'")
    ramp: float = Field(0.75, gt=0.0, le=1.0, description="share of fine-tuning steps over which sparsity "
                        "rises to rate, 'gradual'")
    finetune: FinetuneConfig | None = Field(None, description="fine-tuning used by iterative/gradual")

    @field_validator("layer_rates")
    @classmethod
    def _rates_in_range(cls, rates: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in rates.items() if not 0.0 <= v < 100.0}
        if bad:
            raise ValueError(f"rates must be in [0, 100), got {bad}")
        return rates


class QuantizeConfig(Schema):
    """Weight quantization (``quantize`` stage)."""

    bits: int | None = Field(None, description="1–8, or 16 for fp16 (with allocation: sensitivity, the "
                             "weighted mean bit width)")
    allocation: Literal["uniform", "sensitivity"] = Field("uniform", description="'sensitivity': per-layer "
                                                          "bits from a sensitivity scan")
    method: Literal["linear", "kmeans"] = "linear"
    granularity: Literal["channel", "tensor"] = "channel"
    symmetric: bool = True
    range: Literal["minmax", "mse"] = "minmax"
    layer_bits: dict[str, int] = Field(default_factory=dict)
    skip: list[str] = Field(default_factory=list)
    execute: Literal["float", "int8"] = "float"
    observer: Literal["minmax", "histogram", "percentile"] = "histogram"
    calibration_batches: int = Field(8, gt=0)

    @field_validator("bits")
    @classmethod
    def _bits_in_range(cls, bits: int | None) -> int | None:
        if bits is not None and not (1 <= bits <= 8 or bits == 16):
            raise ValueError(f"must be 1–8 (or 16 for fp16), got {bits}")
        return bits


class EvaluateConfig(Schema):
    """Accuracy and latency measurement (``evaluate`` stage)."""

    split: Literal["test", "val"] = "test"
    latency_batch_size: int = Field(256, gt=0)
    latency_repeats: int = Field(10, gt=0)


class Stage(Schema):
    """One pipeline step: exactly one of the stage keys."""

    train: TrainConfig | None = None
    prune: PruneConfig | None = None
    quantize: QuantizeConfig | None = None
    finetune: FinetuneConfig | None = None
    evaluate: EvaluateConfig | None = None

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


class Constraints(Schema):
    max_accuracy_drop: float | None = Field(None, ge=0.0, description="percentage points")
    prune_share: float = Field(0.5, gt=0.0, le=1.0, description="share of the budget a prune search may use "
                               "when a later quantize stage searches its bits too")


class Recipe(Schema):
    """A whole modelzip job."""

    model: ModelConfig
    data: DataConfig = Field(default_factory=DataConfig)
    pipeline: list[Stage] = Field(min_length=1)
    device: str = "auto"
    seed: int = 0
    output: str = "runs/modelzip"
    constraints: Constraints = Field(default_factory=Constraints)

    @field_validator("device")
    @classmethod
    def _device_form(cls, device: str) -> str:
        if not _DEVICE_RE.match(device):
            raise ValueError(f"must be auto, cpu, mps, cuda or cuda:N, got '{device}'")
        return device
