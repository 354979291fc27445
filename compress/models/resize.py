"""Rebuilding a structurally pruned network: layers resized to stored shapes, and the attributes their
forward reads (widths, head sizes) kept in step with their tensors."""
from __future__ import annotations

import torch
from torch import nn


def fit_to_shapes(model: nn.Module, shapes: dict[str, tuple[int, ...]]) -> None:
    """Resize layers in place so that parameter shapes match ``shapes`` (structurally pruned nets)."""
    for mod_name, module in model.named_modules():
        for kind in ("_parameters", "_buffers"):
            table = getattr(module, kind)
            for name, tensor in list(table.items()):
                key = f"{mod_name}.{name}" if mod_name else name
                if tensor is None or key not in shapes or tuple(tensor.shape) == tuple(shapes[key]):
                    continue
                new = torch.empty(shapes[key], dtype=tensor.dtype, device=tensor.device)
                table[name] = nn.Parameter(new, requires_grad=tensor.requires_grad) if kind == "_parameters" else new
    sync_attributes(model)


def sync_attributes(model: nn.Module) -> None:
    """Set every layer's size attributes from its tensors (after surgery or a resize)."""
    for module in model.modules():
        _fix(module)


def _fix(module: nn.Module) -> None:
    if isinstance(module, nn.modules.conv._ConvNd):
        _fix_conv(module)
    elif isinstance(module, nn.Linear):
        module.out_features, module.in_features = module.weight.shape
    elif isinstance(module, nn.modules.batchnorm._NormBase):
        source = module.weight if module.weight is not None else module.running_mean
        if source is not None:
            module.num_features = source.shape[0]
    elif isinstance(module, nn.LayerNorm) and module.weight is not None:
        module.normalized_shape = tuple(module.weight.shape)  # its forward normalizes over this shape
    elif isinstance(module, nn.MultiheadAttention) and module.in_proj_weight is not None:
        # its forward checks the input width against embed_dim and splits it into num_heads × head_dim
        module.embed_dim = module.kdim = module.vdim = module.in_proj_weight.shape[1]
        module.head_dim = module.embed_dim // module.num_heads
    if hasattr(module, "hidden_dim") and isinstance(getattr(module, "conv_proj", None), nn.Conv2d):
        module.hidden_dim = module.conv_proj.weight.shape[0]  # torchvision's ViT reshapes patches with it


def _fix_conv(module: nn.modules.conv._ConvNd) -> None:
    old_out = module.out_channels
    module.out_channels = module.weight.shape[0]
    if module.groups > 1 and module.groups == old_out:  # depthwise: one group per channel
        module.groups = module.out_channels
    module.in_channels = module.weight.shape[1] * module.groups
