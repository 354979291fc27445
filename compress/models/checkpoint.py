"""Reading plain checkpoints (.pt/.pth/.ckpt/.safetensors) safely and fitting them to a model.

What a file is comes from its first bytes, not its name, so a renamed or foreign file gets an
error that says what it is — and only a real pickle that needs code is ever answered with the
advice to trust it.
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from compress.errors import CheckpointError

StateDict = dict[str, torch.Tensor]
FileKind = Literal["safetensors", "torch", "unknown"]
_NESTED_KEYS = ("state_dict", "model_state_dict", "model", "net", "module")  # training code's wrappers
_PREFIXES = ("module.", "model.", "_orig_mod.", "net.")  # DDP, Lightning, torch.compile, common names
_MAX_HEADER = 100_000_000  # bytes of a safetensors JSON header we are willing to read


def check_file(path: Path, what: str = "checkpoint") -> None:
    """One clear error unless ``path`` is an existing regular file (never opens a FIFO or device)."""
    if not path.exists():
        raise CheckpointError(f"{what} {path} does not exist")
    if path.is_dir():
        raise CheckpointError(f"{what} {path} is a directory, not a file")
    if not path.is_file():
        raise CheckpointError(f"{what} {path} is not a regular file (a device, FIFO or socket)")


def sniff(path: Path) -> FileKind:
    """What the bytes of ``path`` are: a safetensors file, a torch.save file, or something else."""
    check_file(path)
    with path.open("rb") as fh:
        head = fh.read(9)
    if head[:4] == b"PK\x03\x04" or head[:1] == b"\x80":  # torch.save zip / legacy pickle protocol 2+
        return "torch"
    if len(head) == 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") < _MAX_HEADER:
        return "safetensors"
    return "unknown"


def safetensors_metadata(path: Path) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors header (empty when absent or unreadable)."""
    with path.open("rb") as fh:
        size = int.from_bytes(fh.read(8), "little")
        if not 0 < size < _MAX_HEADER:
            return {}
        try:
            header = json.loads(fh.read(size))
        except (ValueError, UnicodeDecodeError):
            return {}
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return meta if isinstance(meta, dict) else {}


def read_checkpoint(path: Path, trust: bool = False) -> StateDict | nn.Module:
    """A state_dict from ``path``; a pickled module only when ``trust`` is set."""
    kind = sniff(path)
    if kind == "safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    if kind == "unknown":
        raise CheckpointError(f"{path}: not a checkpoint modelzip can read (neither a torch.save .pt/.pth/.ckpt, "
                              "a .safetensors nor a .mzip file)", "check the path")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as exc:
        if trust or "weights only" not in str(exc).lower():
            raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({_first_line(exc)})") from None
        raise CheckpointError(
            f"{path} holds pickled Python objects, not just tensors; unpickling runs code from the file",
            "if you trust its source, pass --trust-checkpoint (recipe: model.trust_checkpoint: true)",
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError, KeyError, AttributeError, TypeError) as exc:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({_first_line(exc)})") from None
    return as_state_dict(obj, path)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def as_state_dict(obj: object, path: Path) -> StateDict | nn.Module:
    """The name → tensor mapping inside what training code saved (plain, nested, Lightning, DDP)."""
    if isinstance(obj, nn.Module):
        return obj
    for _ in range(3):  # {"state_dict": …}, {"model": {"state_dict": …}}
        if not isinstance(obj, dict):
            break
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return {str(k): v for k, v in obj.items()}
        nested = next((obj[k] for k in _NESTED_KEYS if isinstance(obj.get(k), dict | nn.Module)), None)
        if nested is None:
            break
        if isinstance(nested, nn.Module):
            return nested
        obj = nested
    raise CheckpointError(f"{path}: expected a state_dict (name → tensor), or one under "
                          f"{', '.join(repr(k) for k in _NESTED_KEYS)}; got {type(obj).__name__}")


def align_keys(state: StateDict, own: set[str]) -> StateDict:
    """``state`` with a wrapper prefix (``module.``, ``model.``, …) removed when that makes its keys fit."""
    if set(state) <= own or not state:
        return state
    for prefix in _PREFIXES:
        if all(k.startswith(prefix) for k in state):
            stripped = {k.removeprefix(prefix): v for k, v in state.items()}
            if set(stripped) & own:
                return align_keys(stripped, own)
        else:
            prefixed = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
            if prefixed and set(prefixed) >= own:  # a Lightning module holding more than the model
                return prefixed
    return state


def check_finite(state: StateDict, source: str) -> None:
    """Non-finite weights are an error naming the tensor, never a model to compress."""
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise CheckpointError(f"{source}: tensor '{name}' holds {bad:,} NaN/inf value(s); a model with "
                                  "non-finite weights cannot be evaluated or compressed",
                                  "re-export the checkpoint from a healthy training run")


def load_state(model: nn.Module, state: StateDict, source: str, assign: bool = False) -> None:
    """Load ``state`` into ``model``; on mismatch one error lists the key and shape conflicts (first few).
    ``assign``: the tensors become the model's (a model built on the meta device), not copied into it."""
    own = model.state_dict()
    state = align_keys(state, set(own))
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    conflicts = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                 for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or conflicts:
        parts = []
        if missing:
            parts.append(f"missing keys: {', '.join(missing[:10])}{' …' if len(missing) > 10 else ''}")
        if unexpected:
            parts.append(f"unexpected keys: {', '.join(unexpected[:10])}{' …' if len(unexpected) > 10 else ''}")
        if conflicts:
            parts.append("shape conflicts: " + "; ".join(conflicts[:10]))
        raise CheckpointError(f"{source} does not fit the architecture: " + " | ".join(parts),
                              "check model.name and model.kwargs against how the checkpoint was trained")
    check_finite(state, source)
    try:
        model.load_state_dict(state, assign=assign)
    except (RuntimeError, ValueError, TypeError) as exc:  # e.g. module versions a loader does not know
        raise CheckpointError(f"{source}: the model refuses these tensors ({str(exc).splitlines()[0][:200]})") from None
