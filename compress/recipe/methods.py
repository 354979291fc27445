"""Compression method configs: each class *is* its method's registry entry.

A ``prune`` stage is one of :class:`UnstructuredPrune` / :class:`ChannelPrune` (picked by
``granularity``), a ``quantize`` stage one of :class:`LinearQuantize` / :class:`KMeansQuantize`
(picked by ``method``) — pydantic discriminated unions, so an option that a method does not
have is an unknown key, and an unknown method name is a validation error with a suggestion.
The handler of each class is listed once in :mod:`compress.methods`. Pruning importances are
the names in :data:`Importance` (implemented in :mod:`compress.prune.importance`).

Each class also declares its ordering preconditions (:meth:`MethodConfig.conflict`), which the
recipe checks at validation time.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Literal, Optional, Union, get_args

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from compress.recipe.base import FinetuneConfig, Schema

Importance = Literal["magnitude", "random", "taylor"]
"""Pruning importance scores: |w|, random, |w·∂L/∂w| (each implemented for weights and channels)."""

MAX_RATE = 99.5  # the highest rate an allocation or a budget search may give


class MethodConfig(Schema):
    """A compression method's options; subclasses are the registry of methods."""

    stage: ClassVar[str]  # the pipeline stage key: prune | quantize
    tag: ClassVar[str]  # the value of its discriminator field
    discriminator: ClassVar[str]  # that field's name

    def conflict(self, earlier: Sequence[MethodConfig]) -> str | None:
        """Why this method cannot follow the ``earlier`` compression stages (None: it can)."""
        return None

    def needs_amount(self) -> str | None:
        """What is missing when no amount (rate / bits) is given and no budget search may choose it."""
        return None

    def patterns(self) -> dict[str, list[str]]:
        """Option name → the module-name patterns it holds (each must name something in the model)."""
        return {}


class PruneBase(MethodConfig):
    """Options every pruning granularity shares."""

    stage: ClassVar[str] = "prune"
    discriminator: ClassVar[str] = "granularity"
    rate: float | None = Field(None, ge=0.0, lt=100.0, description="% of prunable weights removed "
                               "(channel granularity: % of channels)")
    method: Importance = "magnitude"
    scope: Literal["global", "layer"] = "global"
    skip: list[str] = Field(default_factory=list, description="module name patterns left dense")
    layer_rates: dict[str, float] = Field(default_factory=dict)
    calibration_batches: int = Field(8, gt=0, le=10_000, description="taylor: batches of gradients")
    iterations: int = Field(3, gt=0, le=1000, description="prune/fine-tune cycles, 'iterative'")
    finetune: FinetuneConfig | None = Field(None, description="fine-tuning inside the stage (iterative, "
                                            "gradual, budget search)")

    def patterns(self) -> dict[str, list[str]]:
        return {"skip": self.skip, "layer_rates": list(self.layer_rates)}

    @field_validator("layer_rates")
    @classmethod
    def _rates_in_range(cls, rates: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in rates.items() if not 0.0 <= v < 100.0}
        if bad:
            raise ValueError(f"rates must be in [0, 100), got {bad}")
        return rates


class UnstructuredPrune(PruneBase):
    """Single Linear/Conv weights zeroed by importance; masks kept through later training."""

    tag: ClassVar[str] = "unstructured"
    granularity: Literal["unstructured"] = "unstructured"
    allocation: Literal["uniform", "sensitivity"] = Field("uniform", description="'sensitivity': per-layer "
                                                          "rates from an eval-only scan, rate as their mean")
    schedule: Literal["oneshot", "iterative", "gradual", "variational"] = Field("oneshot", description="variational: "
                                                                           "sparse variational dropout learns "
                                                                           "which weights go during fine-tuning")
    min_rate: float = Field(0.0, ge=0.0, lt=100.0, description="lowest rate a budget search may return")
    update_every: int = Field(50, gt=0, description="steps between mask updates, 'gradual'")
    ramp: float = Field(0.75, gt=0.0, le=1.0, description="share of fine-tuning steps over which sparsity "
                        "rises to rate, 'gradual' (the KL term's weight rises to kl_weight, 'variational')")
    kl_weight: float = Field(1.0, gt=0.0, le=1e4, description="'variational': weight of the KL term (1 = the "
                             "ELBO's own; higher: sparser)")
    max_log_alpha: float = Field(3.0, ge=-10.0, le=10.0, description="'variational' without rate: weights whose "
                                 "learned log α (noise-to-signal) is above this go, in every layer (max_layer_rate "
                                 "does not apply: the data decides how sparse each layer gets)")
    zero_unread: bool = Field(True, description="zero the incoming weights and bias of every unit whose outgoing "
                              "weights were all pruned (exact: the outputs do not change; smaller files)")
    max_layer_rate: float = Field(99.0, gt=0.0, le=100.0, description="scope global: no layer loses more than this "
                                  "% of its weights (a global threshold can otherwise empty a small layer, "
                                  "such as the classifier)")

    def conflict(self, earlier: Sequence[MethodConfig]) -> str | None:
        if any(isinstance(c, KMeansQuantize) for c in earlier):
            return ("pruning after k-means quantization would let shared values revive pruned weights; "
                    "put the prune stage before the quantize stage")
        return None

    def needs_amount(self) -> str | None:
        if self.schedule == "variational":
            return None  # the learned noise decides (max_log_alpha)
        return ("no rate given: pass --rate R (percent, 0 ≤ R < 100) or set prune.rate, or give an accuracy "
                "budget (--max-drop) to search for the highest rate, or use schedule: variational")

    @model_validator(mode="after")
    def _rate_under_ceiling(self) -> UnstructuredPrune:
        asked = max(self.rate or 0.0, self.min_rate)
        if self.scope == "global" and asked > self.max_layer_rate:
            raise ValueError(f"rate {asked:g} is above max_layer_rate {self.max_layer_rate:g}, which no layer may "
                             "pass, so the overall rate cannot reach it: raise max_layer_rate (≤ 100) or lower "
                             "the rate")
        return self


class ChannelPrune(PruneBase):
    """Whole output channels/neurons removed through torch-pruning's dependency graph.

    Without a rate, a search decides: under an accuracy budget the largest reduction of the
    ``objective`` that stays inside it; with ``target_speedup`` the smallest reduction that is that
    much cheaper. ``allocation: sensitivity`` gives each group its own share (loss per unit saved).
    """

    tag: ClassVar[str] = "channel"
    granularity: Literal["channel"] = "channel"
    schedule: Literal["oneshot", "iterative"] = Field("oneshot", description="channel surgery cannot happen "
                                                      "inside a training step, so there is no gradual schedule")
    objective: Literal["latency", "macs", "params"] = Field("latency", description="what a search reduces: latency "
                                                            "measured on the run's device, MACs or parameters")
    target_speedup: float | None = Field(None, gt=1.0, le=100.0, description="search the most accurate model at "
                                         "least this much cheaper in the objective than the dense one")
    allocation: Literal["uniform", "sensitivity"] = Field("sensitivity", description="searches: one share for every "
                                                          "group, or per-group shares from measured loss and savings")

    def conflict(self, earlier: Sequence[MethodConfig]) -> str | None:
        if earlier:
            return ("channel pruning after unstructured pruning or quantization would drop their masks/grids; "
                    "put the channel prune stage first")
        return None

    def needs_amount(self) -> str | None:
        return ("no rate given: pass --rate R (percent of channels), or an accuracy budget (--max-drop) or "
                "--target-speedup S to search")

    @model_validator(mode="after")
    def _rate_or_target(self) -> ChannelPrune:
        if self.rate is not None and self.target_speedup is not None:
            raise ValueError("give either rate or target_speedup (a rate fixes the amount; a target searches it)")
        return self


class QuantizeBase(MethodConfig):
    """Options every quantization method shares."""

    stage: ClassVar[str] = "quantize"
    discriminator: ClassVar[str] = "method"
    bits: int | None = Field(None, description="1–8, or 16 for fp16 (with allocation: sensitivity, the "
                             "weighted mean bit width)")
    allocation: Literal["uniform", "sensitivity"] = Field("uniform", description="'sensitivity': per-layer "
                                                          "bits from a sensitivity scan")
    layer_bits: dict[str, int] = Field(default_factory=dict, description="module-name pattern → bits")
    skip: list[str] = Field(default_factory=list)
    bias_bits: Literal[8, 16, 32] = Field(32, description="biases of the quantized layers: float32, fp16, or an "
                                          "8-bit grid per tensor (kept on it through fine-tuning)")
    execute: Literal["float", "int8"] = "float"
    observer: Literal["minmax", "histogram", "percentile"] = "histogram"
    calibration_batches: int = Field(8, gt=0, le=10_000)

    @field_validator("bits")
    @classmethod
    def _bits_in_range(cls, bits: int | None) -> int | None:
        if bits is not None and not (1 <= bits <= 8 or bits == 16):
            raise ValueError(f"must be 1–8 (or 16 for fp16), got {bits}")
        return bits

    def patterns(self) -> dict[str, list[str]]:
        return {"skip": self.skip, "layer_bits": list(self.layer_bits)}

    @field_validator("layer_bits")
    @classmethod
    def _layer_bits_in_range(cls, bits: dict[str, int]) -> dict[str, int]:
        bad = sorted({b for b in bits.values() if not (1 <= b <= 8 or b == 16)})
        if bad:
            raise ValueError(f"bit widths {bad} are out of range; use 1–8, or 16 for fp16")
        return bits

    def conflict(self, earlier: Sequence[MethodConfig]) -> str | None:
        if any(isinstance(c, QuantizeBase) for c in earlier):
            return ("a second quantize stage would fight the first one's grids during fine-tuning; use one "
                    "quantize stage (layer_bits sets per-layer widths)")
        return None

    def needs_amount(self) -> str | None:
        return ("no bit width given: pass --bits N (1–8, or 16 for fp16) or set quantize.bits, or give an "
                "accuracy budget (--max-drop) to search for the fewest bits per layer")


class LinearQuantize(QuantizeBase):
    """Uniform affine grids (per channel or per tensor); QAT through the straight-through estimator."""

    tag: ClassVar[str] = "linear"
    method: Literal["linear"] = "linear"
    granularity: Literal["channel", "tensor"] = "channel"
    symmetric: bool = True
    range: Literal["minmax", "mse"] = "minmax"

    @model_validator(mode="after")
    def _symmetric_needs_two_bits(self) -> LinearQuantize:
        if self.symmetric and (self.bits == 1 or 1 in self.layer_bits.values()):
            raise ValueError("symmetric linear quantization needs ≥ 2 bits (1 bit cannot hold −a, 0 and +a); "
                             "use method: kmeans for 1-bit (two shared values) or bits ≥ 2")
        return self


class KMeansQuantize(QuantizeBase):
    """Weight sharing (Deep Compression): 2^bits shared values per layer, centroids fine-tuned."""

    tag: ClassVar[str] = "kmeans"
    method: Literal["kmeans"] = "kmeans"
    centroid_bits: Literal[16, 32] = Field(16, description="precision of the shared values: 16 rounds each "
                                           "centroid to float16 (half the codebook's bytes; a relative change "
                                           "below 0.05 %), 32 keeps float32")


def _picker(field: str, default: str) -> Any:
    """A discriminator reading ``field`` (``default`` when absent) from a mapping or a config object."""
    def pick(value: Any) -> str | None:
        if isinstance(value, dict):
            return value.get(field, default)
        return getattr(value, field, None)

    pick.__name__ = field  # pydantic names the discriminator in its errors: the field, for our messages
    return pick


def _union(field: str, default: str, *classes: type[MethodConfig]) -> Any:
    members = tuple(Annotated[c, Tag(c.tag)] for c in classes)
    return Annotated[Union[members], Discriminator(_picker(field, default))]  # noqa: UP007


PRUNE_METHODS: tuple[type[PruneBase], ...] = (UnstructuredPrune, ChannelPrune)
QUANTIZE_METHODS: tuple[type[QuantizeBase], ...] = (LinearQuantize, KMeansQuantize)
METHOD_CONFIGS: tuple[type[MethodConfig], ...] = (*PRUNE_METHODS, *QUANTIZE_METHODS)

PruneConfig = _union(PruneBase.discriminator, "unstructured", *PRUNE_METHODS)
QuantizeConfig = _union(QuantizeBase.discriminator, "linear", *QUANTIZE_METHODS)
OptionalPrune = Optional[PruneConfig]  # noqa: UP007 - Annotated unions do not support ``|``
OptionalQuantize = Optional[QuantizeConfig]  # noqa: UP007


def tags(classes: Sequence[type[MethodConfig]]) -> tuple[str, ...]:
    """The names of ``classes`` as a recipe spells them (also the CLI's choices)."""
    return tuple(c.tag for c in classes)


def importance_names() -> tuple[str, ...]:
    return get_args(Importance)
