"""The catalogue of compression methods: each config class and its handler, listed once.

``apply(model, config, workspace)`` is the one way a method runs (the torchao pattern: the
config's class picks the handler). Adding a method: its config class in
:mod:`compress.recipe.methods` (added to its stage's union), its handler in its own module
under ``prune/`` or ``quantize/``, and one line here.
"""
from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import torch.nn as nn

from compress.method import Handler, Outcome, Workspace
from compress.prune import prune_channels, prune_unstructured
from compress.quantize import quantize_kmeans, quantize_linear
from compress.recipe.methods import ChannelPrune, KMeansQuantize, LinearQuantize, MethodConfig, UnstructuredPrune

HANDLERS: Mapping[type[MethodConfig], Handler] = MappingProxyType({
    UnstructuredPrune: prune_unstructured,
    ChannelPrune: prune_channels,
    LinearQuantize: quantize_linear,
    KMeansQuantize: quantize_kmeans,
})


def apply(model: nn.Module, config: MethodConfig, workspace: Workspace) -> Outcome:
    """Run the method ``config`` describes on ``model`` (in place); return what it did."""
    handler = HANDLERS.get(type(config))
    if handler is None:
        raise NotImplementedError(f"no handler for {type(config).__name__}: list it in compress.methods.HANDLERS")
    return handler(model, config, workspace)
