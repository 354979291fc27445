"""Turning a model spec (name + kwargs) into an ``nn.Module``."""
from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

import torch.nn as nn

from compress.errors import InputError
from compress.models.zoo import MODELS


def check_model_name(name: str) -> None:
    """Raise ``ValueError`` (with a suggestion) unless ``name`` can name a model."""
    if name in MODELS:
        return
    if name.startswith("torchvision:"):
        import torchvision.models as tvm

        arch = name.split(":", 1)[1]
        if arch not in tvm.list_models():
            from compress.registry import did_you_mean

            raise ValueError(f"unknown torchvision model '{arch}'{did_you_mean(arch, tvm.list_models())}")
        return
    if ":" in name:
        module, _, attr = name.partition(":")
        if module and attr.isidentifier():
            return
        raise ValueError(f"'{name}' is not of the form package.module:factory")
    raise ValueError(MODELS.unknown(name) + " (or torchvision:<name>, or package.module:factory)")


def resolve_factory(name: str) -> Callable[..., nn.Module]:
    if name in MODELS:
        return MODELS.get(name)
    if name.startswith("torchvision:"):
        import torchvision.models as tvm

        arch = name.split(":", 1)[1]
        return lambda **kw: tvm.get_model(arch, **kw)
    module, _, attr = name.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise InputError(f"model '{name}': cannot import {attr} from {module} ({exc})",
                         "make sure the package is importable (pip install -e it, or set PYTHONPATH)") from None


def resolve_kwargs(name: str, kwargs: dict[str, Any], num_classes: int | None,
                   in_channels: int | None) -> dict[str, Any]:
    """Fill ``num_classes``/``in_channels`` from the data where the factory takes them."""
    out = dict(kwargs)
    if name.startswith("torchvision:"):
        params: set[str] = {"num_classes"}
    else:
        try:
            params = set(inspect.signature(resolve_factory(name)).parameters)
        except (TypeError, ValueError):
            params = set()
    if num_classes is not None and "num_classes" in params:
        out.setdefault("num_classes", num_classes)
    if in_channels is not None and "in_channels" in params:
        out.setdefault("in_channels", in_channels)
    return out


def build_model(name: str, kwargs: dict[str, Any]) -> nn.Module:
    """Build the architecture ``name`` with ``kwargs`` (weights left at initialisation)."""
    try:
        model = resolve_factory(name)(**kwargs)
    except TypeError as exc:
        raise InputError(f"model '{name}' does not accept kwargs {kwargs}: {exc}",
                         "check model.kwargs in the recipe") from None
    if not isinstance(model, nn.Module):
        raise InputError(f"model factory '{name}' returned {type(model).__name__}, not an nn.Module")
    return model
