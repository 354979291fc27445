"""The recipe's plain sections: model, data, training, evaluation, constraints.

Leaf data: this module imports nothing from modelzip but the name suggestions. Names that
live in registries above it (datasets, models) are checked against a catalogue passed as
pydantic validation context (``{"datasets": [...], "check_model": fn}``) by whoever loads the
recipe (:func:`compress.load_recipe`), so the schema never imports the layers that own them.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from compress.registry import did_you_mean

_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
MAX_SEED = 2 ** 63 - 1  # torch generators take 64-bit seeds; offsets are added to it


class Schema(BaseModel):
    """Every recipe section: unknown keys rejected, assignments validated, floats finite."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


def _catalogue(info: ValidationInfo, key: str) -> Any:
    return (info.context or {}).get(key) if isinstance(info.context, dict) else None


class ModelConfig(Schema):
    """Which architecture to build and which weights to load into it."""

    name: str = Field(description="registry name, 'torchvision:<name>' or 'package.module:factory'")
    kwargs: dict[str, Any] = Field(default_factory=dict)
    checkpoint: str | None = None
    weights: str | None = Field(None, max_length=4096, description="torchvision pretrained weights: DEFAULT, a "
                                "name (IMAGENET1K_V2) or a weights file; with a checkpoint, only its preprocessing")
    head: Literal["replace", "keep"] = Field("replace", description="with weights whose classes differ from the "
                                              "data's: a new head (replace) or the weights' own (keep)")
    trust_checkpoint: bool = Field(False, description="allow loading a pickled nn.Module or importing a "
                                   "model factory named by a file")

    @field_validator("name")
    @classmethod
    def _known_model(cls, name: str, info: ValidationInfo) -> str:
        check: Callable[[str], None] | None = _catalogue(info, "check_model")
        if check is not None:
            check(name)  # raises ValueError with a suggestion
        return name


class DataConfig(Schema):
    """Dataset, location and batching for evaluation."""

    name: str = "digits"
    root: str = "./data"
    download: bool = False
    augment: bool = Field(False, description="training augmentation: padded random crop + flip (cifar), "
                          "RandomResizedCrop + flip (imagenet)")
    val_fraction: float = Field(0.0, ge=0.0, lt=1.0)
    eval_batch_size: int | None = Field(None, gt=0, le=1 << 16, description="default 1000 in memory, 64 streamed")
    image_size: int = Field(224, gt=0, le=4096, description="imagefolder, and the crop of transforms: imagenet")
    transforms: Literal["auto", "imagenet", "cifar", "none"] = Field(
        "auto", description="imagenet: resize + centre crop + ImageNet (or the weights') statistics; cifar: the "
        "data's size and statistics; none: cifar without augmentation; auto: imagenet with pretrained weights")
    in_memory: Literal["auto"] | bool = Field("auto", description="decode everything once (auto: when it "
                                              "takes ≤ 2 GiB as float32), else stream batches from files")
    workers: int | None = Field(None, ge=0, le=256, description="DataLoader workers when streamed (default: "
                                "up to 4, one per core)")
    calibration_samples: int | None = Field(None, gt=0, le=10 ** 8, description="budget-search checks and "
                                            "analyses use at most this many samples (default: the whole split in "
                                            "memory, 5,000 streamed); the report's figures use the whole split")

    @model_validator(mode="after")
    def _augment_has_transforms(self) -> DataConfig:
        if self.augment and self.transforms == "none":
            raise ValueError("augment: true asks for augmentation, transforms: none for none; drop one")
        return self

    @field_validator("name")
    @classmethod
    def _known_dataset(cls, name: str, info: ValidationInfo) -> str:
        names: list[str] | None = _catalogue(info, "datasets")
        if names is not None and name not in names:
            raise ValueError(f"unknown dataset '{name}'{did_you_mean(name, names)}")
        return name


class TrainConfig(Schema):
    """Options of the shared training loop (``train`` stage)."""

    epochs: int = Field(3, gt=0, le=100_000)
    max_steps: int | None = Field(None, gt=0, description="stop after this many optimizer steps (large data)")
    precision: Literal["fp32", "bf16", "fp16"] = Field("fp32", description="autocast dtype of forward passes "
                                                        "(fp16: CUDA only, with a gradient scaler)")
    channels_last: Literal["auto"] | bool = Field("auto", description="train convnets in channels-last memory "
                                                  "format (auto: on CUDA); weights return to the usual layout after")
    batch_size: int = Field(128, gt=0, le=1 << 20)
    optimizer: Literal["sgd", "adam", "adamw"] = "adam"
    lr: float = Field(1e-3, gt=0, le=1e3)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0, le=10.0)
    schedule: Literal["constant", "cosine", "step"] = "cosine"
    step_epochs: int = Field(1, gt=0, description="epochs between decays, 'step' schedule")
    gamma: float = Field(0.1, gt=0.0, le=1.0)
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)


class FinetuneConfig(TrainConfig):
    """The same loop after compression: masks and grids are kept."""

    epochs: int = Field(2, gt=0, le=100_000)
    lr: float = Field(1e-4, gt=0, le=1e3)
    distill: float = Field(0.0, ge=0.0, le=1.0, description="weight of the distillation loss towards the "
                           "model as it was before the first compression stage (0 = labels only)")
    temperature: float = Field(4.0, gt=0.0, le=1e3, description="softmax temperature of the distillation loss")


class EvaluateConfig(Schema):
    """Accuracy and latency measurement (``evaluate`` stage)."""

    split: Literal["test", "val"] = "test"
    latency_batch_size: int = Field(256, gt=0, le=1 << 16)
    latency_repeats: int = Field(10, gt=0, le=10_000)


class ExportConfig(Schema):
    """Export the model as it is at this point for a deployment runtime, and verify it by running it."""

    format: Literal["onnx", "pt2"] = "onnx"
    int8: bool = Field(False, description="onnx: static int8 (QDQ) through ONNX Runtime, calibrated on training data")
    batch: Literal["dynamic"] | int = Field("dynamic", description="'dynamic' batch dimension, or a fixed size")
    opset: int = Field(18, ge=17, le=23, description="onnx opset")
    observer: Literal["minmax", "histogram", "percentile"] | None = Field(
        None, description="int8 activation calibration (default: the quantize stage's observer, else minmax)")
    calibration_batches: int = Field(8, gt=0, le=10_000, description="int8: batches of 128 training images")
    latency_batch_size: int = Field(64, gt=0, le=1 << 16, description="the second batch size latency is measured at")

    @field_validator("batch")
    @classmethod
    def _positive_batch(cls, batch: str | int) -> str | int:
        if isinstance(batch, int) and not 0 < batch <= 1 << 16:
            raise ValueError(f"must be 'dynamic' or 1–65536, got {batch}")
        return batch

    @model_validator(mode="after")
    def _int8_is_onnx(self) -> ExportConfig:
        if self.int8 and self.format != "onnx":
            raise ValueError("int8 export runs through ONNX Runtime; use format: onnx")
        return self

    @property
    def label(self) -> str:
        return f"{self.format}-int8" if self.int8 else self.format

    @property
    def suffix(self) -> str:
        """The file ending of this export, beside the artifact (``model.int8.onnx``)."""
        return {"onnx": ".onnx", "onnx-int8": ".int8.onnx", "pt2": ".pt2"}[self.label]

    @property
    def fixed_batch(self) -> int | None:
        return None if self.batch == "dynamic" else int(self.batch)


class Constraints(Schema):
    max_accuracy_drop: float | None = Field(None, ge=0.0, le=100.0, description="percentage points")
    prune_share: float = Field(0.5, gt=0.0, le=1.0, description="share of the budget a prune search may use "
                               "when a later quantize stage searches its bits too")


def check_device(device: str) -> str:
    if not _DEVICE_RE.match(device):
        raise ValueError(f"must be auto, cpu, mps, cuda or cuda:N, got '{device}'")
    return device
