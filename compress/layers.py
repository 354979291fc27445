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


def layer_of(param_name: str) -> str:
    """The name a weight goes by in scans, allocations and reports: its module's name for a
    ``.weight``, the parameter's own name otherwise (an attention layer's ``in_proj_weight``)."""
    return param_name.removesuffix(".weight") if param_name != "weight" else ""


def matches(name: str, patterns: list[str] | dict[str, object]) -> bool:
    return any(fnmatch.fnmatch(name, pat) for pat in patterns)


# nn.MultiheadAttention keeps its q/k/v projection as a bare parameter, not in a Linear: without it
# a ViT's attention (a quarter of its weights) would stay dense and fp32 with nothing said.
_ATTENTION_WEIGHTS = ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight")


def weight_params(model: nn.Module, skip: list[str]) -> dict[str, nn.Parameter]:
    """The weight matrices methods compress, by parameter name, for modules matching no ``skip`` pattern:
    ``<module>.weight`` of every Linear/Conv layer and the q/k/v projections of attention layers."""
    out: dict[str, nn.Parameter] = {}
    for name, m in model.named_modules():
        if matches(name, skip):
            continue
        if isinstance(m, WEIGHTED):
            out[f"{name}.weight"] = m.weight
        elif isinstance(m, nn.MultiheadAttention):
            for attr in _ATTENTION_WEIGHTS:
                p = getattr(m, attr, None)
                if isinstance(p, nn.Parameter):
                    out[f"{name}.{attr}" if name else attr] = p
    return out


def unmatched(model: nn.Module, patterns: Iterable[str]) -> list[str]:
    """The patterns among ``patterns`` that match no module or layer name of ``model`` (typos, stale names)."""
    # the root's name is '': a pattern matching only it (skip: ['']) leaves every layer in place
    names = [n for n, _ in model.named_modules() if n] + [layer_of(n) for n in weight_params(model, [])]
    return [pat for pat in patterns if not any(fnmatch.fnmatch(n, pat) for n in names)]

def per_layer(param_name: str, default: float, overrides: dict[str, float]) -> float:
    """The override whose pattern matches the param's module (or layer) name (first match), else ``default``."""
    module, layer = module_of(param_name), layer_of(param_name)
    return next((v for pat, v in overrides.items() if fnmatch.fnmatch(module, pat) or fnmatch.fnmatch(layer, pat)),
                default)


def count_nonzero(tensors: Iterable[torch.Tensor]) -> int:
    """Non-zero elements over ``tensors``."""
    return sum(int((t != 0).sum()) for t in tensors)


def weight_shapes(model: nn.Module) -> dict[str, tuple[str, list[int], int]]:
    """layer name → (module type, weight shape, non-zero count) of every weight :func:`weight_params` lists."""
    modules = dict(model.named_modules())
    return {layer_of(n): (type(modules[module_of(n)]).__name__, list(p.shape), int((p != 0).sum()))
            for n, p in weight_params(model, []).items()}


def layer_stats(before: dict[str, tuple[str, list[int], int]], model: nn.Module,
                bits: dict[str, float] | None = None) -> list[LayerStat]:
    """Compare the baseline's ``weight_shapes`` with ``model`` now."""
    now = weight_shapes(model)
    by_layer = {layer_of(n): b for n, b in (bits or {}).items()}
    stats = []
    for name, (kind, shape0, _) in before.items():
        _, shape, nonzero = now.get(name, (kind, [0], 0))
        stats.append(LayerStat(name, kind, shape0, shape, math.prod(shape0), nonzero, by_layer.get(name, 32.0)))
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
