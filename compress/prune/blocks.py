"""What torch-pruning's dependency graph cannot work out alone about some blocks, found per model.

- **Opaque blocks** are attention implementations that compute with their own weights functionally or
  split their input by a fixed head layout (torchvision's Swin v1/v2 ``ShiftedWindowAttention``,
  MaxViT's ``RelativePositionalMultiHeadAttention``; any module with ``num_heads``/``n_heads`` that is
  not ``nn.MultiheadAttention``), and modules with layers inside that also hold parameters with no
  single channel axis (a bare such parameter is refused, named: the user decides what to skip). The
  graph treats each as one node that keeps the width it reads and writes, so that width (usually the
  residual stream) stays whole while everything else (MLP hidden layers, convolutions) is pruned.
- **Token parameters** (ViT's class token and position embedding, 1×S×D) lose the stream's channels
  on their last axis; **channel vectors** outside layers (ConvNeXt's layer scale, C×1×1) on their one
  long axis.
- **Shuffled streams** (ShuffleNet v2's channel shuffle, a 5-D view the graph cannot map) are traced
  as if unshuffled and kept whole; each branch's inner channels are pruned.
- ``nn.MultiheadAttention`` keeps its width a multiple of ``num_heads`` (:func:`multiple`).
"""
from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from compress.errors import UnsupportedError
from compress.layers import WEIGHTED, matches

# Module types whose own parameters torch-pruning knows how to slice.
KNOWN = (nn.modules.conv._ConvNd, nn.Linear, nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm,
         nn.modules.instancenorm._InstanceNorm, nn.PReLU, nn.Embedding, nn.MultiheadAttention, nn.LSTM)


# Blocks around which torch-pruning's grouping does not finish or fails (MaxViT's grid/window partitions:
# no result in 10 minutes at 224 px, even with the block opaque): refused before any work.
_REFUSED = frozenset({"PartitionAttentionLayer"})


@dataclass
class GraphHelp:
    """What :func:`analyse` found: extra arguments for the pruner and what stays whole."""

    unwrapped: list[tuple[nn.Parameter, int]] = field(default_factory=list)  # parameter, channel axis
    opaque: dict[nn.Module, tuple[int, int]] = field(default_factory=dict)  # block → (in, out) width
    frozen: list[nn.Module] = field(default_factory=list)  # layers whose output channels must stay
    shuffles: list[nn.Module] = field(default_factory=list)  # ShuffleNet blocks, traced unshuffled

    def kept(self, names: dict[nn.Module, str]) -> str | None:
        """A note naming what stays whole, for the report (None when nothing does)."""
        whole = [names[m] for m in self.opaque] + [names[m] for m in self.shuffles]
        if not whole:
            return None
        shown = ", ".join(whole[:4]) + (f" … ({len(whole)} in all)" if len(whole) > 4 else "")
        return (f"kept at full width: {shown} — attention blocks with a fixed head layout, or shuffled "
                "channel streams; the layers between them are pruned")


def channel_vector_dim(param: torch.Tensor) -> int | None:
    """The channel axis of a parameter held outside a layer: a token parameter's last axis (1×S×D), else
    the one axis longer than 1 (a ConvNeXt layer scale, C×1×1); None when there is no such axis."""
    if param.dim() == 3 and param.shape[0] == 1 and param.shape[-1] > 1:
        return 2
    big = [d for d, size in enumerate(param.shape) if size > 1]
    return big[0] if len(big) == 1 else None


def _is_attention(module: nn.Module) -> bool:
    heads = getattr(module, "num_heads", getattr(module, "n_heads", None))
    return (isinstance(heads, int) and not isinstance(module, nn.MultiheadAttention)
            and not any(isinstance(m, nn.MultiheadAttention) for m in module.modules()))


def analyse(model: nn.Module, skip: list[str], example: torch.Tensor) -> GraphHelp:
    """Find the opaque blocks, outside parameters and shuffled streams of ``model``."""
    from torchvision.models.shufflenetv2 import InvertedResidual as ShuffleBlock

    help_ = GraphHelp()
    candidates = []
    for name, module in model.named_modules():
        if isinstance(module, KNOWN) or matches(name, skip) or any(module in b.modules() for b in candidates):
            continue
        if type(module).__name__ in _REFUSED:
            raise UnsupportedError(
                f"channel pruning cannot handle module '{name}' ({type(module).__name__}): torch-pruning cannot "
                "group channels through its window partitions", "use granularity: unstructured for this model")
        if isinstance(module, ShuffleBlock):
            help_.shuffles.append(module)
            help_.frozen += [_last_layer(branch) for branch in (module.branch1, module.branch2)
                             if _last_layer(branch) is not None]
            continue
        own = [(n, p, channel_vector_dim(p)) for n, p in module.named_parameters(recurse=False) if p is not None]
        odd = [n for n, _, dim in own if dim is None]
        if (module is not model and _is_attention(module)) or odd:
            if module is model or not any(isinstance(m, WEIGHTED) for m in module.modules()):
                # a bare parameter used by hand (a C×H×W bias): the user decides whether to skip what feeds it
                raise UnsupportedError(
                    f"channel pruning cannot handle module '{name}' ({type(module).__name__}): it holds parameters "
                    f"({', '.join(odd)}) whose channels torch-pruning cannot slice safely",
                    f"skip it and the layer feeding it (prune.skip: ['{name}', …]) or use granularity: unstructured")
            candidates.append(module)
            continue
        help_.unwrapped += [(p, dim) for _, p, dim in own if dim is not None]
    help_.opaque = _widths(model, candidates, example, {m: n for n, m in model.named_modules()})
    return help_


def _last_layer(branch: nn.Module) -> nn.Module | None:
    layers = [m for m in branch.modules() if isinstance(m, WEIGHTED)]
    return layers[-1] if layers else None


def _widths(model: nn.Module, blocks: list[nn.Module], example: torch.Tensor,
            names: dict[nn.Module, str]) -> dict[nn.Module, tuple[int, int]]:
    """Each block's input and output width, seen in one forward pass (channel axis: the last when a
    linear layer inside reads it, else axis 1)."""
    seen: dict[nn.Module, tuple[int, int]] = {}

    def record(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        if inputs and isinstance(inputs[0], torch.Tensor) and isinstance(output, torch.Tensor):
            seen[module] = (_width(module, inputs[0]), _width(module, output))

    handles = [b.register_forward_hook(record) for b in blocks]
    try:
        with torch.no_grad():
            model.eval()(example)
    finally:
        for h in handles:
            h.remove()
    for block in blocks:
        if block not in seen:
            raise UnsupportedError(
                f"channel pruning cannot handle module '{names[block]}' ({type(block).__name__}): it holds "
                "parameters without one channel axis and does not map one tensor to one tensor",
                f"skip it and the layer feeding it (prune.skip: ['{names[block]}', …]) or use granularity: "
                "unstructured")
    return seen


def _width(module: nn.Module, tensor: torch.Tensor) -> int:
    last = tensor.shape[-1]
    reads_last = any(isinstance(m, nn.Linear) and m.in_features == last for m in module.modules())
    return int(last if reads_last or tensor.dim() < 3 else tensor.shape[1])


def opaque_pruners(help_: GraphHelp) -> dict[type, Any]:
    """torch-pruning pruners for the opaque blocks' types: widths only — the blocks are ignored layers,
    so no group that would change them is ever pruned."""
    if not help_.opaque:
        return {}
    from torch_pruning.pruner.function import BasePruningFunc

    widths = help_.opaque

    class Kept(BasePruningFunc):  # one instance per run: it reads this model's widths
        def prune_out_channels(self, layer: nn.Module, idxs: Any) -> nn.Module:
            raise AssertionError("an opaque block is never pruned")  # the graph marks its groups unprunable

        prune_in_channels = prune_out_channels

        def get_out_channels(self, layer: nn.Module) -> int | None:
            return widths[layer][1] if layer in widths else None

        def get_in_channels(self, layer: nn.Module) -> int | None:
            return widths[layer][0] if layer in widths else None

    pruner = Kept()
    return {type(block): pruner for block in widths}


@contextmanager
def traceable(help_: GraphHelp) -> Iterator[None]:
    """ShuffleNet blocks forward without their channel shuffle while the graph is traced (their streams are
    kept whole, so the missing permutation changes no group that is pruned)."""
    for block in help_.shuffles:
        block.forward = functools.partial(_unshuffled, block)  # instance attribute: this model only
    try:
        yield
    finally:
        for block in help_.shuffles:
            del block.forward


def _unshuffled(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if block.stride == 1:
        half = x.shape[1] // 2  # slices, not chunk: the graph maps a slice's channels, not a chunk's into a cat
        return torch.cat((x[:, :half], block.branch2(x[:, half:])), dim=1)
    return torch.cat((block.branch1(x), block.branch2(x)), dim=1)


def multiple(group: Any) -> int:
    """The group's width must stay a multiple of this (``num_heads`` of any ``nn.MultiheadAttention`` in it)."""
    heads = [dep.target.module.num_heads for dep, _ in group if isinstance(dep.target.module, nn.MultiheadAttention)]
    return math.lcm(*heads) if heads else 1
