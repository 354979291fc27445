"""Starting from published weights: torchvision's (and timm's) pretrained classifiers, their preprocessing,
a new head.

Weights come from torch hub's cache (``$TORCH_HOME/hub/checkpoints``), as torchvision keeps them;
a file missing there is downloaded (with a timeout and torchvision's hash check) or, offline,
named with the path to put it in and where it comes from. Only a recipe names weights: an
artifact stores the plain architecture (``num_classes`` of its head) and never downloads.
"""
from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
import torch.nn as nn

from compress.data.transforms import IMAGENET_MEAN, IMAGENET_STD, Preprocess
from compress.errors import InputError
from compress.files import write_atomic
from compress.models.build import build_model
from compress.models import timm_weights
from compress.models.checkpoint import check_file, load_state, read_checkpoint
from compress.recipe.base import ModelConfig

DOWNLOAD_TIMEOUT_S = 30  # per network operation: offline machines answer in seconds, not never


def _arch(cfg: ModelConfig) -> str:
    if not cfg.name.startswith(("torchvision:", "timm:")):
        raise InputError(f"model.weights: pretrained weights are for torchvision:<name> and timm:<name> models, "
                         f"not '{cfg.name}'", "load your own trained weights with model.checkpoint")
    return cfg.name.split(":", 1)[1]


def is_file(weights: str) -> bool:
    """A path to a weights file rather than a weights name (``DEFAULT``, ``IMAGENET1K_V2``)."""
    return "/" in weights or "\\" in weights or Path(weights).suffix in (".pth", ".pt", ".bin", ".ckpt")


def weights_enum(cfg: ModelConfig) -> Any:
    """torchvision's weights entry the recipe names."""
    import torchvision.models as tvm

    arch = _arch(cfg)
    try:
        enum = tvm.get_model_weights(arch)
    except (ValueError, KeyError):
        raise InputError(f"model.weights: torchvision has no pretrained weights for '{arch}'",
                         "drop model.weights, or give a path to a weights file") from None
    names = [n for n in enum.__members__ if n != "DEFAULT"]
    if cfg.weights == "DEFAULT":
        return enum.DEFAULT
    if cfg.weights not in enum.__members__:
        raise InputError(f"model.weights: {arch} has no weights '{cfg.weights}'",
                         f"choose DEFAULT or one of {', '.join(names)}")
    return enum[cfg.weights]


def preprocess(cfg: ModelConfig) -> Preprocess | None:
    """The input size and statistics the weights were trained with (ImageNet's for a weights file)."""
    if not cfg.weights:
        return None
    # with a checkpoint the weights only name the preprocessing: their file need not be there any more
    check = is_file(cfg.weights) and not cfg.checkpoint
    if cfg.name.startswith("timm:"):
        return timm_weights.preprocess(_arch(cfg), cfg.weights, is_file(cfg.weights), check)
    if is_file(cfg.weights):
        _arch(cfg)
        if check:
            check_file(Path(cfg.weights), "model.weights file")  # said before any data is loaded
        return Preprocess("imagenet", 224, 256, IMAGENET_MEAN, IMAGENET_STD)
    t = weights_enum(cfg).transforms()
    return Preprocess("imagenet", int(t.crop_size[0]), int(t.resize_size[0]), tuple(t.mean), tuple(t.std))


def cache_file(url: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def fetch(url: str) -> Path:
    """The cached file of ``url``, downloaded first if missing (hash-checked against its name)."""
    path = cache_file(url)
    if path.is_file():
        return path
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:  # noqa: S310 - torchvision's https URL
            data = response.read()
    except OSError as exc:
        raise InputError(f"model.weights: {path} is missing and {url} cannot be downloaded "
                         f"({getattr(exc, 'reason', exc)})",
                         f"download {url} on a machine with network access and put it at {path} "
                         "(TORCH_HOME moves the cache)") from None
    match = torch.hub.HASH_REGEX.search(path.name)
    if match and not hashlib.sha256(data).hexdigest().startswith(match.group(1)):
        raise InputError(f"model.weights: the download of {url} does not match its hash {match.group(1)}",
                         "retry; if it persists, download the file by hand")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data)
    return path


def build(cfg: ModelConfig, num_classes: int | None) -> tuple[nn.Module, dict[str, Any]]:
    """The pretrained model (head replaced for ``num_classes`` where asked) and the kwargs that rebuild
    its architecture without the weights."""
    arch = _arch(cfg)
    kwargs = {k: v for k, v in cfg.kwargs.items() if k != "num_classes"}
    is_timm = cfg.name.startswith("timm:")
    if is_timm:
        model = timm_weights.create(arch, cfg.weights or "DEFAULT", is_file(cfg.weights or ""), kwargs)
    elif is_file(cfg.weights or ""):
        model = build_model(cfg.name, kwargs)
        state = read_checkpoint(Path(cfg.weights or ""), trust=False)
        load_state(model, state, str(cfg.weights))  # type: ignore[arg-type]
    else:
        import torchvision.models as tvm

        weights = weights_enum(cfg)
        fetch(weights.url)
        try:
            model = tvm.get_model(arch, weights=weights, **kwargs)
        except (RuntimeError, ValueError, TypeError) as exc:
            raise InputError(f"model.weights: cannot load {weights} into {arch}: {str(exc).splitlines()[0][:300]}",
                             f"check model.kwargs, or delete {cache_file(weights.url)} to fetch it again") from None
    classes = int(getattr(model, "num_classes", 0)) if is_timm else head_size(model)
    if num_classes is not None and num_classes != classes:
        if cfg.head == "keep" and num_classes < classes:
            pass  # the data's labels are the first num_classes of the weights' classes
        elif cfg.head == "keep":
            raise InputError(f"model.head: keep: the data has {num_classes} classes and the weights' head {classes}",
                             "set model.head: replace (a new head, trained by the train stage)")
        else:
            if is_timm:
                timm_weights.reset_head(model, num_classes)
            else:
                replace_head(model, num_classes)
            kwargs["num_classes"] = num_classes
    check_rebuilds(model, cfg.name, kwargs)
    return model, kwargs


def _head(model: nn.Module) -> tuple[str, nn.Module]:
    found = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear | nn.Conv2d)]
    if not found:
        raise InputError("model.weights: the model has no Linear or Conv2d layer to serve as its head")
    return found[-1]


def head_size(model: nn.Module) -> int:
    _, layer = _head(model)
    return layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels


def replace_head(model: nn.Module, num_classes: int) -> None:
    """Swap the last Linear (or 1×1 Conv2d) layer for a freshly initialised one with ``num_classes`` outputs."""
    name, old = _head(model)
    if isinstance(old, nn.Linear):
        new: nn.Module = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    else:
        new = nn.Conv2d(old.in_channels, num_classes, old.kernel_size, old.stride, old.padding,
                        bias=old.bias is not None)
    parent_name, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, attr, new)


@torch.no_grad()
def check_rebuilds(model: nn.Module, name: str, kwargs: dict[str, Any]) -> None:
    """The artifact rebuilds ``name(**kwargs)`` and loads the weights into it: that must be the same network
    (torchvision builds a few architectures differently with weights, e.g. inception's input transform)."""
    plain = build_model(name, kwargs).eval()
    own = model.state_dict()
    same = {k: tuple(v.shape) for k, v in plain.state_dict().items()} == {k: tuple(v.shape) for k, v in own.items()}
    if same:
        plain.load_state_dict(own)
        x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
        try:
            same = torch.equal(plain(x), model.eval()(x))
        except RuntimeError:
            same = True  # the input size does not suit the architecture; the shapes matched
    if not same:
        raise InputError(f"model.weights: torchvision builds {name} with these weights differently from "
                         f"{name}({', '.join(f'{k}={v}' for k, v in kwargs.items())})",
                         "set model.kwargs to what the weights need (e.g. image_size), or choose other weights")
