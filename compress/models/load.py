"""Getting the model a run starts from: built from the recipe, a plain checkpoint, or an artifact.

An artifact is rebuilt without running code it names unless trusted (see
:func:`compress.models.build.untrusted_reason`), and its tensors are decoded only within the
shapes of the architecture it names, so a forged file cannot inflate memory.
"""
from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from compress import artifact
from compress.artifact import LinearGrid, ModelSpec
from compress.errors import ArtifactError, CheckpointError, InputError
from compress.models import pretrained
from compress.models.build import build_model, resolve_kwargs, untrusted_reason
from compress.models.checkpoint import StateDict, check_file, load_state, read_checkpoint
from compress.models.resize import fit_to_shapes
from compress.recipe.base import ModelConfig

Source = Literal["init", "pretrained", "checkpoint", "artifact"]


@dataclass
class Loaded:
    """A model and what its file said about it."""

    model: nn.Module
    spec: ModelSpec
    source: Source
    grids: dict[str, LinearGrid] = field(default_factory=dict)  # weights stored on linear grids
    execute: dict[str, Any] | None = None  # an int8 execution plan stored with the artifact
    manifest: dict[str, Any] = field(default_factory=dict)  # the artifact's manifest (recipe, report)
    file_bytes: int | None = None  # size of the artifact file it came from


def load_artifact(path: Path, device: str | torch.device = "cpu", trust: bool = False) -> Loaded:
    """Rebuild the model stored in the artifact at ``path`` (eval mode, on ``device``)."""
    header = artifact.read_header(path)
    spec = header.spec
    reason = untrusted_reason(spec.name, spec.kwargs)
    if reason is not None and not trust:
        raise ArtifactError(f"{path}: {reason}",
                            "pass --trust-checkpoint (compress.load(..., trust_model_code=True)) only if you "
                            "trust the file's source")
    try:
        model = _skeleton(spec)
        limits = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        art = artifact.decode(header, limits, consume=True)
        fit_to_shapes(model, {k: tuple(v.shape) for k, v in art.state.items()})
        load_state(model, _with_versions(art.state, header.manifest.get("versions")), str(path),
                   assign=_on_meta(model))
    except (CheckpointError, InputError) as exc:
        if isinstance(exc, ArtifactError):
            raise
        raise ArtifactError(exc.message, exc.hint) from None
    return Loaded(model.to(device).eval(), spec, "artifact", dict(art.grids), header.manifest.get("execute"),
                  header.manifest, path.stat().st_size)


def _skeleton(spec: ModelSpec) -> nn.Module:
    """The architecture without memory for its weights (on the meta device: the stored tensors become its
    parameters, so a load holds the model once), or built normally when it keeps tensors outside its
    state_dict (non-persistent buffers) or its factory cannot build on meta."""
    try:
        with torch.device("meta"):
            model = build_model(spec.name, dict(spec.kwargs))
    except Exception:  # noqa: BLE001 - a factory computing values at build time (RegNet's widths): build it
        model = build_model(spec.name, dict(spec.kwargs))
        if any(m._non_persistent_buffers_set for m in model.modules()):
            return model
        return model.to("meta")  # its weights are about to be replaced: free them before decoding
    if any(m._non_persistent_buffers_set for m in model.modules()):
        return build_model(spec.name, dict(spec.kwargs))
    return model


def _on_meta(model: nn.Module) -> bool:
    return any(t.is_meta for t in itertools.chain(model.parameters(), model.buffers()))


def _with_versions(state: dict[str, torch.Tensor], versions: Any) -> dict[str, torch.Tensor]:
    """``state`` carrying the module versions (``_metadata``) some modules' loaders read (e.g. MNASNet)."""
    if not isinstance(versions, dict):
        return state
    out: Any = OrderedDict(state)
    out._metadata = OrderedDict((str(k), {"version": int(v)}) for k, v in versions.items()
                                if isinstance(v, int) and not isinstance(v, bool))
    return out


def module_versions(model: nn.Module) -> dict[str, int]:
    """Module name → version for the modules whose loader may read it (what :func:`_with_versions` restores).

    Only classes outside ``torch.nn`` that declare a version of their own are listed (MNASNet's loader
    refuses a state_dict without one); torch.nn's own modules load old checkpoints without it, and
    listing every BatchNorm would cost a kilobyte in a small file.
    """
    return {name: int(type(m)._version) for name, m in model.named_modules()
            if getattr(type(m), "_version", 1) != 1 and not type(m).__module__.startswith("torch.nn")}


Opened = Loaded | StateDict | nn.Module | None


def open_checkpoint(cfg: ModelConfig) -> Opened:
    """Read the recipe's checkpoint before anything else (an artifact is rebuilt, on the CPU): a bad file
    is answered before data is loaded or a model trained."""
    if not cfg.checkpoint:
        return None
    ckpt = Path(cfg.checkpoint)
    check_file(ckpt)
    if artifact.is_artifact(ckpt):
        return load_artifact(ckpt, "cpu", trust=cfg.trust_checkpoint)
    return read_checkpoint(ckpt, trust=cfg.trust_checkpoint)


def load_model(cfg: ModelConfig, num_classes: int | None, in_channels: int | None, device: torch.device,
               opened: Opened = None) -> Loaded:
    """The model a recipe's ``model`` section describes, on ``device`` in eval mode (``opened``: its checkpoint,
    as :func:`open_checkpoint` read it)."""
    if opened is None and cfg.checkpoint:
        opened = open_checkpoint(cfg)
    if isinstance(opened, Loaded):
        opened.model = opened.model.to(device).eval()
        return opened
    if opened is None and cfg.weights:
        model, kwargs = pretrained.build(cfg, num_classes)
        return Loaded(model.to(device).eval(), ModelSpec(cfg.name, kwargs), "pretrained")
    kwargs = resolve_kwargs(cfg.name, cfg.kwargs, num_classes, in_channels)
    spec = ModelSpec(cfg.name, kwargs)
    model = build_model(spec.name, kwargs)
    if opened is None:
        return Loaded(model.to(device).eval(), spec, "init")
    if isinstance(opened, nn.Module):
        model = opened
    else:
        load_state(model, opened, str(cfg.checkpoint))
    return Loaded(model.to(device).eval(), spec, "checkpoint")


@torch.no_grad()
def check_fits(model: nn.Module, example: torch.Tensor, num_classes: int, name: str) -> None:
    """One forward pass on two samples: the model must take the data's inputs and cover its classes."""
    shape = "×".join(map(str, example.shape[1:]))
    was_training = model.training
    try:
        out = model.eval()(example[:2])
    except Exception as exc:  # noqa: BLE001 - any failure here means the model and data do not fit
        raise InputError(f"model '{name}' cannot take the data's inputs ({shape}): {type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:200] if str(exc) else ''}",
                         "set model.kwargs (e.g. in_channels) to match the data, or choose data that "
                         "fits the model (data.name, data.image_size)") from None
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        raise InputError(f"model '{name}' returns {getattr(out, 'shape', type(out).__name__)} for a batch of "
                         f"{shape} inputs; a classifier returns (batch, classes) logits")
    if out.shape[1] < num_classes:
        raise InputError(f"model '{name}' has {out.shape[1]} outputs but the data has {num_classes} classes",
                         "set model.kwargs.num_classes, or use a checkpoint trained for these classes")
