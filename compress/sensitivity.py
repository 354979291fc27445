"""Per-layer sensitivity: accuracy when one layer alone is pruned (or quantized), the others intact.

Evaluation only — no training — so it is cheap, and it tells where compression hurts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from compress.context import RunContext
from compress.data import Split
from compress import plotting
from compress.evaluate import evaluate
from compress.layers import weight_params
from compress.prune.masks import keep_top
from compress.quantize import linear


@dataclass
class Sensitivity:
    """``prune[layer][rate]`` and ``bits[layer][b]``: top-1 % with only that layer compressed."""

    baseline: float
    prune: dict[str, dict[float, float]] = field(default_factory=dict)
    bits: dict[str, dict[int, float]] = field(default_factory=dict)
    params: dict[str, int] = field(default_factory=dict)  # weights per layer


@torch.no_grad()
def measure(model: nn.Module, split: Split, ctx: RunContext, *, rates: list[float], bits: list[int],
            skip: list[str] | None = None, batch_size: int = 1000) -> Sensitivity:
    """Accuracy on ``split`` with each Linear/Conv weight pruned (magnitude) or quantized alone."""
    def acc() -> float:
        return evaluate(model, split, batch_size, ctx.device).accuracy

    params = weight_params(model, skip or [])
    result = Sensitivity(acc(), params={n.removesuffix(".weight"): p.numel() for n, p in params.items()})
    for name, p in params.items():
        layer, original = name.removesuffix(".weight"), p.detach().clone()
        for rate in rates:
            p.mul_(keep_top(original.abs().flatten(), rate).view_as(p))
            result.prune.setdefault(layer, {})[rate] = acc()
            p.copy_(original)
        for b in bits:
            p.copy_(linear.project(original, linear.fit_grid(original, b)))
            result.bits.setdefault(layer, {})[b] = acc()
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
        ax.set_ylabel("top-1 accuracy (%)")
        if kind == "bits":
            ax.set_xticks(sorted({b for points in table.values() for b in points}))
            ax.invert_xaxis()
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    plotting.save(fig, path)
