"""Reading plain checkpoints (.pt/.pth/.safetensors) safely and fitting them to a model."""
from __future__ import annotations

import pickle
from pathlib import Path

import torch
import torch.nn as nn

from compress.errors import CheckpointError

StateDict = dict[str, torch.Tensor]
_NESTED_KEYS = ("state_dict", "model_state_dict", "model")


def read_checkpoint(path: Path, trust: bool = False) -> StateDict | nn.Module:
    """A state_dict from ``path``; a pickled module only when ``trust`` is set."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as exc:
        if trust:
            raise CheckpointError(f"{path}: cannot unpickle ({exc})") from None
        raise CheckpointError(
            f"{path} holds pickled Python objects, not just tensors; unpickling runs code from the file",
            "if you trust its source, pass --trust-checkpoint (recipe: model.trust_checkpoint: true)",
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({exc})") from None
    return _as_state_dict(obj, path)


def _as_state_dict(obj: object, path: Path) -> StateDict | nn.Module:
    if isinstance(obj, nn.Module):
        return obj
    if isinstance(obj, dict):
        for key in _NESTED_KEYS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
        if all(isinstance(v, torch.Tensor) for v in obj.values()):
            return {k.removeprefix("module."): v for k, v in obj.items()}
    raise CheckpointError(f"{path}: expected a state_dict (name → tensor), got {type(obj).__name__}")


def load_state(model: nn.Module, state: StateDict, source: str) -> None:
    """Load ``state`` into ``model``; on mismatch one error lists every key and shape conflict."""
    own = model.state_dict()
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
    model.load_state_dict(state)


def fit_to_shapes(model: nn.Module, shapes: dict[str, tuple[int, ...]]) -> None:
    """Resize layers in place so that parameter shapes match ``shapes`` (structurally pruned nets)."""
    for mod_name, module in model.named_modules():
        changed = False
        for kind in ("_parameters", "_buffers"):
            table = getattr(module, kind)
            for name, tensor in list(table.items()):
                key = f"{mod_name}.{name}" if mod_name else name
                if tensor is None or key not in shapes or tuple(tensor.shape) == tuple(shapes[key]):
                    continue
                new = torch.empty(shapes[key], dtype=tensor.dtype)
                table[name] = nn.Parameter(new, requires_grad=tensor.requires_grad) if kind == "_parameters" else new
                changed = True
        if changed:
            _fix_attributes(module)


def _fix_attributes(module: nn.Module) -> None:
    if isinstance(module, nn.modules.conv._ConvNd):
        old_out = module.out_channels
        module.out_channels = module.weight.shape[0]
        if module.groups > 1 and module.groups == old_out:
            module.groups = module.out_channels
        module.in_channels = module.weight.shape[1] * module.groups
    elif isinstance(module, nn.Linear):
        module.out_features, module.in_features = module.weight.shape
    elif isinstance(module, nn.modules.batchnorm._NormBase):
        module.num_features = (module.weight if module.weight is not None else module.running_mean).shape[0]
