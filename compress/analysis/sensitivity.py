"""Per-layer sensitivity: accuracy when one layer alone is pruned (or quantized), the others intact.

Evaluation only — no training — so it is cheap, and it tells where compression hurts. It sits
below the methods: how a layer is pruned (scores) or quantized (a projection) is passed in.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from compress import plotting
from compress.context import RunContext
from compress.data import Dataset, Samples, Split
from compress.evaluate import evaluate
from compress.layers import layer_of, weight_params
from compress.ranking import keep_top

CALIBRATION_SAMPLES = 5000

Projection = Callable[[torch.Tensor, int], torch.Tensor]  # (weights, bits) → weights on a bits-bit grid


def calibration_split(data: Dataset, limit: int | None = None) -> tuple[Samples, str]:
    """What analyses measure on, and its name: the validation split if there is one, else the first
    ``limit`` training samples — never the test set the result is judged on."""
    limit = limit or data.calibration_samples or CALIBRATION_SAMPLES
    if data.val is not None:
        if (data.calibration_samples is None and isinstance(data.val, Split)) or len(data.val) <= limit:
            return data.val, f"validation split ({len(data.val):,} images)"
        return data.val.first(limit), f"first {limit:,} images of the validation split"  # large data: bounded
    n = min(limit, len(data.train))
    return data.train.first(limit), f"first {n:,} training images"


@dataclass
class Sensitivity:
    """``prune[layer][rate]`` and ``bits[layer][b]``: top-1 % with only that layer compressed.

    The ``*_loss`` tables hold the matching cross-entropy losses: a finer signal than top-1 on
    a small calibration set, which is what adaptive allocation uses.
    """

    baseline: float
    prune: dict[str, dict[float, float]] = field(default_factory=dict)
    bits: dict[str, dict[int, float]] = field(default_factory=dict)
    params: dict[str, int] = field(default_factory=dict)  # weights per layer
    baseline_loss: float = 0.0
    prune_loss: dict[str, dict[float, float]] = field(default_factory=dict)
    bits_loss: dict[str, dict[int, float]] = field(default_factory=dict)
    split: str = ""  # what it was measured on

    def prune_costs(self) -> dict[str, dict[float, float]]:
        """Loss increase per layer and rate."""
        return {k: {r: v - self.baseline_loss for r, v in c.items()} for k, c in self.prune_loss.items()}

    def bits_costs(self) -> dict[str, dict[int, float]]:
        """Loss increase per layer and bit width."""
        return {k: {b: v - self.baseline_loss for b, v in c.items()} for k, c in self.bits_loss.items()}


@torch.no_grad()
def measure(model: nn.Module, split: Samples, ctx: RunContext, *, rates: list[float], bits: list[int],
            project: Projection | None = None, skip: list[str] | None = None, batch_size: int = 1000,
            scores: dict[str, torch.Tensor] | None = None, layers: dict[str, nn.Parameter] | None = None,
            split_name: str = "") -> Sensitivity:
    """Accuracy on ``split`` with each Linear/Conv weight pruned or quantized alone.

    ``layers`` (default: every Linear/Conv weight not matching ``skip``) are scanned; ``scores``
    rank weights for pruning (default: magnitude); ``project`` quantizes (needed for ``bits``).
    """
    if bits and project is None:
        raise ValueError("a bits scan needs a projection")

    def run() -> tuple[float, float]:
        res = evaluate(model, split, batch_size, ctx.device, ctx.dist)
        return res.accuracy, res.loss

    params = layers if layers is not None else weight_params(model, skip or [])
    acc, loss = run()
    result = Sensitivity(acc, params={layer_of(n): p.numel() for n, p in params.items()},
                         baseline_loss=loss, split=split_name)
    for name, p in params.items():
        layer, original = layer_of(name), p.detach().clone()
        score = scores[name] if scores is not None else original.abs()
        for rate in rates:
            p.mul_(keep_top(score.flatten(), rate).view_as(p))
            result.prune.setdefault(layer, {})[rate], result.prune_loss.setdefault(layer, {})[rate] = run()
            p.copy_(original)
        for b in bits:
            assert project is not None
            p.copy_(project(original, b))
            result.bits.setdefault(layer, {})[b], result.bits_loss.setdefault(layer, {})[b] = run()
            p.copy_(original)
    return result


def plot(result: Sensitivity, path: Path, title: str) -> None:
    """Accuracy vs sparsity (and vs bits) per layer as a PNG; needs the ``plot`` extra."""
    plt = plotting.pyplot()
    panels = [(k, v) for k, v in (("prune", result.prune), ("bits", result.bits)) if v]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    for ax, (kind, table) in zip(axes[0], panels, strict=True):
        for layer, points in table.items():
            xs = sorted(points)
            ax.plot(xs, [points[x] for x in xs], marker="o", label=f"{layer} ({result.params[layer]:,} w)")
        ax.axhline(result.baseline, color="grey", linestyle="--", linewidth=1, label="baseline")
        ax.set_xlabel("sparsity of the layer (%)" if kind == "prune" else "bits of the layer")
        ax.set_ylabel(f"top-1 accuracy (%), {result.split}" if result.split else "top-1 accuracy (%)")
        if kind == "bits":
            ax.set_xticks(sorted({b for points in table.values() for b in points}))
            ax.invert_xaxis()
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    plotting.save(fig, path)
