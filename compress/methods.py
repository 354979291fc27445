"""The catalogue of compression methods: each config class and its handler, listed once.

``apply(model, config, workspace)`` is the one way a method runs (the torchao pattern: the
config's class picks the handler). Adding a method: its config class in
:mod:`compress.recipe.methods` (added to its stage's union), its handler in its own module
under ``prune/`` or ``quantize/``, and one line here.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import torch
import torch.nn as nn

from compress.context import RunContext
from compress.errors import InputError
from compress.layers import unmatched
from compress.method import Handler, Outcome, Workspace
from compress.prune import prune_channels, prune_unstructured, structured
from compress.quantize import quantize_kmeans, quantize_linear
from compress.recipe.methods import ChannelPrune, KMeansQuantize, LinearQuantize, MethodConfig, UnstructuredPrune

Check = Callable[[nn.Module, Any, torch.Tensor, RunContext], None]

HANDLERS: Mapping[type[MethodConfig], Handler] = MappingProxyType({
    UnstructuredPrune: prune_unstructured,
    ChannelPrune: prune_channels,
    LinearQuantize: quantize_linear,
    KMeansQuantize: quantize_kmeans,
})

# What a method can refuse about a model before anything is trained (beyond its name patterns).
CHECKS: Mapping[type[MethodConfig], Check] = MappingProxyType({
    ChannelPrune: structured.preflight,
})


def check(model: nn.Module, config: MethodConfig, example: torch.Tensor, ctx: RunContext) -> None:
    """Refuse, before any compute, what ``config`` cannot do to ``model``: name patterns matching no
    module (a typo would silently compress everything, or nothing) and the method's own check."""
    for option, patterns in config.patterns().items():
        missing = unmatched(model, patterns)
        if missing:
            names = [n for n, _ in model.named_modules() if n]
            raise InputError(f"{config.stage}.{option}: {', '.join(repr(p) for p in missing)} matches no module "
                             f"of the model", f"module names look like {', '.join(names[:5])}"
                             f"{', …' if len(names) > 5 else ''} (modelzip inspect lists them; * and ? match "
                             "within names, e.g. 'features.*')")
    own = CHECKS.get(type(config))
    if own is not None:
        own(model, config, example, ctx)


def apply(model: nn.Module, config: MethodConfig, workspace: Workspace) -> Outcome:
    """Run the method ``config`` describes on ``model`` (in place); return what it did."""
    handler = HANDLERS.get(type(config))
    if handler is None:
        raise NotImplementedError(f"no handler for {type(config).__name__}: list it in compress.methods.HANDLERS")
    return handler(model, config, workspace)
