"""Turning a model spec (name + kwargs) into an ``nn.Module``, and what that may cost in trust."""
from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch.nn as nn

from compress.errors import InputError
from compress.models.zoo import MODELS
from compress.registry import did_you_mean

# torchvision and timm fetch these from the net or read the files they name
_DOWNLOADING_KWARGS = ("weights", "weights_backbone", "pretrained", "pretrained_cfg", "pretrained_cfg_overlay",
                       "checkpoint_path", "cache_dir")


def torchvision_names() -> list[str]:
    import torchvision.models as tvm

    return list(tvm.list_models())


def _timm() -> Any:
    """The timm package, or ``ValueError`` saying how to install it."""
    try:
        import timm
    except ImportError:
        raise ValueError("timm models need the timm extra: pip install 'modelzip[timm]'") from None
    return timm


def check_model_name(name: str) -> None:
    """Raise ``ValueError`` (with a suggestion) unless ``name`` can name a model."""
    if name in MODELS:
        return
    if name.startswith("timm:"):
        arch, timm = name.split(":", 1)[1], _timm()
        if not timm.is_model(arch):  # the full list only for the suggestion
            raise ValueError(f"unknown timm model '{arch}'{did_you_mean(arch, list(timm.list_models()))}")
        return
    if name.startswith("torchvision:"):
        arch = name.split(":", 1)[1]
        names = torchvision_names()
        if arch not in names:
            raise ValueError(f"unknown torchvision model '{arch}'{did_you_mean(arch, names)}")
        return
    if ":" in name:
        module, _, attr = name.partition(":")
        if module and all(p.isidentifier() for p in module.split(".")) and attr.isidentifier():
            return
        raise ValueError(f"'{name}' is not of the form package.module:factory")
    raise ValueError(MODELS.unknown(name) + " (or torchvision:<name>, or package.module:factory)")


def untrusted_reason(name: str, kwargs: dict[str, Any]) -> str | None:
    """Why building ``name(**kwargs)`` named by a *file* would run or fetch foreign code (None: safe).

    Safe: modelzip's own architectures and torchvision's, with plain values and no pretrained
    weights (those are downloaded). Anything else imports a module the file names.
    """
    if name in MODELS or name.startswith(("torchvision:", "timm:")):
        if name.startswith("torchvision:"):
            arch = name.split(":", 1)[1]
            if arch not in torchvision_names():
                return f"it names '{name}', which is not a torchvision architecture"
        if name.startswith("timm:"):
            try:
                timm = _timm()
            except ValueError as exc:
                return str(exc)
            if not timm.is_model(name.split(":", 1)[1]):
                return f"it names '{name}', which is not a timm architecture"
        fetch = [k for k in kwargs if k in _DOWNLOADING_KWARGS and kwargs[k] not in (None, False)]
        if fetch:
            return f"its kwargs ask for {', '.join(fetch)}, which are downloaded or read from files"
        odd = [k for k, v in kwargs.items() if not _plain(v)]
        if odd:
            return f"its kwargs {', '.join(odd)} are not plain numbers or strings"
        return None
    return f"the model is built by importing '{name}', and importing runs that module's code"


def _plain(value: Any, depth: int = 0) -> bool:
    if value is None or isinstance(value, bool | int | float):
        return True
    if isinstance(value, str):
        return len(value) <= 64
    if isinstance(value, list | tuple) and depth == 0 and len(value) <= 64:
        return all(_plain(v, 1) for v in value)
    return False


def resolve_factory(name: str) -> Callable[..., nn.Module]:
    if name in MODELS:
        return MODELS.get(name)
    if name.startswith("torchvision:"):
        import torchvision.models as tvm

        arch = name.split(":", 1)[1]
        return lambda **kw: tvm.get_model(arch, **kw)
    if name.startswith("timm:"):
        import timm

        arch = name.split(":", 1)[1]
        return lambda **kw: timm.create_model(arch, **kw)
    module, _, attr = name.partition(":")
    try:
        with _cwd_on_path():
            return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise InputError(f"model '{name}': cannot import {attr} from {module} ({exc})",
                         "make sure the package is importable from the current folder, installed "
                         "(pip install -e .) or on PYTHONPATH") from None


@contextmanager
def _cwd_on_path() -> Iterator[None]:
    """The current folder on ``sys.path`` while importing a user's factory, as Python does for scripts."""
    cwd = str(Path.cwd())
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)


def resolve_kwargs(name: str, kwargs: dict[str, Any], num_classes: int | None,
                   in_channels: int | None) -> dict[str, Any]:
    """Fill ``num_classes``/``in_channels`` from the data where the factory takes them."""
    out = dict(kwargs)
    if name.startswith("timm:"):  # timm names the input channels in_chans
        if num_classes is not None:
            out.setdefault("num_classes", num_classes)
        if in_channels is not None:
            out.setdefault("in_chans", in_channels)
        return out
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
    except (TypeError, ValueError) as exc:
        raise InputError(f"model '{name}' does not accept kwargs {kwargs}: {exc}",
                         "check model.kwargs in the recipe") from None
    if not isinstance(model, nn.Module):
        raise InputError(f"model factory '{name}' returned {type(model).__name__}, not an nn.Module")
    return model
