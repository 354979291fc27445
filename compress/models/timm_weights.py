"""timm models from pretrained weights (the optional ``timm`` extra): the Hugging Face cache or a file.

timm downloads weights through the Hugging Face hub into its cache (``HF_HOME``) and reads them
from there afterwards; offline, a missing file is one error naming the hub repository. A weights
file (``model.weights: path``) is read through timm's own loader, with no network at all.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch.nn as nn

from compress.data.transforms import Preprocess
from compress.errors import InputError
from compress.models.checkpoint import check_file


def _name(arch: str, weights: str | None, from_file: bool) -> str:
    """timm's name for the weights: ``arch`` (its default tag) or ``arch.tag``."""
    return arch if from_file or weights in (None, "DEFAULT") else f"{arch}.{weights}"


def pretrained_cfg(arch: str, weights: str | None, from_file: bool) -> Any:
    import timm
    from timm.models import get_pretrained_cfg

    try:
        cfg = get_pretrained_cfg(_name(arch, weights, from_file))
    except RuntimeError:
        cfg = None
    if cfg is None:
        tags = [n.split(".", 1)[1] for n in timm.list_pretrained(f"{arch}.*") if "." in n]
        raise InputError(f"model.weights: timm has no weights '{weights}' for {arch}",
                         f"choose DEFAULT or one of {', '.join(tags[:8]) or '(none published)'}")
    return cfg


def preprocess(arch: str, weights: str | None, from_file: bool, check: bool = True) -> Preprocess:
    """The input size and statistics the weights were trained with (timm's pretrained config); ``check``:
    a weights file must exist (not when only the preprocessing is wanted)."""
    if from_file and check:
        check_file(Path(weights or ""), "model.weights file")
    cfg = pretrained_cfg(arch, weights, from_file)
    crop = int(cfg.input_size[-1])
    return Preprocess("imagenet", crop, int(math.floor(crop / cfg.crop_pct)), tuple(cfg.mean), tuple(cfg.std))


def create(arch: str, weights: str, from_file: bool, kwargs: dict[str, Any]) -> nn.Module:
    """``arch`` with its pretrained weights (its own head; see :func:`reset_head`)."""
    import timm

    if from_file:
        check_file(Path(weights), "model.weights file")
        extra: dict[str, Any] = {"pretrained_cfg_overlay": {"file": str(weights)}}
    else:
        extra = {}
    name = _name(arch, weights, from_file)
    try:
        return timm.create_model(name, pretrained=True, **extra, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the hub raises many kinds (offline, missing file, bad file)
        hub = getattr(pretrained_cfg(arch, weights, from_file), "hf_hub_id", None) or name
        where = os.environ.get("HF_HOME", str(Path.home() / ".cache" / "huggingface"))
        raise InputError(f"model.weights: cannot load timm weights {weights if from_file else hub}: "
                         f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}",
                         f"with network access timm downloads them into {where} (HF_HOME); offline, give "
                         "model.weights as a file of the architecture's weights") from None


def reset_head(model: nn.Module, num_classes: int) -> None:
    """timm's own head replacement (it knows each family's classifier)."""
    model.reset_classifier(num_classes)  # type: ignore[operator]
