"""Per-layer facts for the report: shapes, non-zeros, multiply-accumulates."""
from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable

import torch
import torch.nn as nn

from compress.report import LayerStat

WEIGHTED = (nn.Linear, nn.modules.conv._ConvNd)


def module_of(param_name: str) -> str:
    return param_name.rsplit(".", 1)[0] if "." in param_name else ""


def matches(name: str, patterns: list[str] | dict[str, object]) -> bool:
    return any(fnmatch.fnmatch(name, pat) for pat in patterns)


def weight_params(model: nn.Module, skip: list[str]) -> dict[str, nn.Parameter]:
    """``<module>.weight`` of every Linear/Conv layer whose module name matches no ``skip`` pattern."""
    return {f"{name}.weight": m.weight for name, m in model.named_modules()
            if isinstance(m, WEIGHTED) and not matches(name, skip)}


def keep_top(scores: torch.Tensor, rate: float) -> torch.Tensor:
    """Boolean mask keeping all but the lowest ``rate`` % of ``scores`` (a flat tensor)."""
    n_remove = int(round(scores.numel() * rate / 100.0))
    keep = torch.ones_like(scores, dtype=torch.bool)
    if n_remove > 0:
        keep[torch.topk(scores, n_remove, largest=False).indices] = False
    return keep


def per_layer(param_name: str, default: float, overrides: dict[str, float]) -> float:
    """The override whose pattern matches the param's module name (first match), else ``default``."""
    module = module_of(param_name)
    return next((v for pat, v in overrides.items() if fnmatch.fnmatch(module, pat)), default)


def count_nonzero(tensors: Iterable[torch.Tensor]) -> int:
    """Non-zero elements over ``tensors``."""
    return sum(int((t != 0).sum()) for t in tensors)


def weight_shapes(model: nn.Module) -> dict[str, tuple[str, list[int], int]]:
    """name → (type, weight shape, non-zero count) of every Linear/Conv layer."""
    out = {}
    for name, m in model.named_modules():
        w = getattr(m, "weight", None)
        if isinstance(m, WEIGHTED) and isinstance(w, torch.Tensor):
            out[name] = (type(m).__name__, list(w.shape), int((w != 0).sum()))
    return out


def layer_stats(before: dict[str, tuple[str, list[int], int]], model: nn.Module,
                bits: dict[str, float] | None = None) -> list[LayerStat]:
    """Compare the baseline's ``weight_shapes`` with ``model`` now."""
    now = weight_shapes(model)
    stats = []
    for name, (kind, shape0, _) in before.items():
        _, shape, nonzero = now.get(name, (kind, [0], 0))
        stats.append(LayerStat(name, kind, shape0, shape, math.prod(shape0), nonzero,
                               (bits or {}).get(f"{name}.weight", 32.0)))
    return stats


@torch.no_grad()
def count_macs(model: nn.Module, example: torch.Tensor) -> int:
    """Multiply-accumulates of Linear/Conv layers for one input (dense count; zeros still cost)."""
    total = 0

    def hook(m: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        per_output = m.weight[0].numel() if isinstance(m, nn.modules.conv._ConvNd) else m.in_features
        total += (out.numel() // out.shape[0]) * per_output

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, WEIGHTED)]
    was_training = model.training
    try:
        model.eval()(example[:1])
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return total
