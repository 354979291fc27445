"""Zeroing units no later layer reads: after unstructured pruning, a neuron or channel whose every outgoing
weight is zero still stores its incoming weights and bias, though nothing downstream sees them.

Which layers read a unit comes from torch-pruning's dependency graph (the same that channel pruning
cuts with: it follows flattens, residual adds and concatenations). A unit is unread when the graph
shows at least one reading layer and every reading layer's weights on it are zero; then its own
weights and bias (and those of layers coupled to it: batch norms, the other branch of an add) are set
to zero. The model computes exactly what it did — checked on an example before anything is kept.
Models the graph cannot follow, or layers it relates to anything it does not know, are left alone.
"""
from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def zero_unread_units(model: nn.Module, example: torch.Tensor, keep: list[nn.Module]) -> int:
    """Zero the parameters of units no layer reads (never those of ``keep``: the classifier); return how many
    units were zeroed (0 when the graph cannot be built or the check fails, with the model unchanged)."""
    import torch_pruning as tp

    was_training = model.training
    model.eval()
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)  # traces autograd
        with torch.no_grad():
            before = model(example)
            zeroed = sum(_zero_group(graph, m) for m in model.modules()
                         if isinstance(m, _LAYERS) and m not in keep and _plain(m))
            if zeroed and not torch.equal(model(example), before):
                raise ValueError("outputs changed")  # the graph misled us: undo
    except Exception:  # noqa: BLE001 - an optimisation: a model the tracer cannot follow keeps its weights
        model.load_state_dict(saved)
        zeroed = 0
    finally:
        model.train(was_training)
    return zeroed


def _plain(m: nn.Module) -> bool:
    return getattr(m, "groups", 1) == 1


def _zero_group(graph: Any, module: nn.Module) -> int:
    """Zero the unread units of ``module``'s output channels; how many there were."""
    out = module.weight.shape[0]
    pruner = graph.get_pruner_of_module(module)
    group = graph.get_pruning_group(module, pruner.prune_out_channels, idxs=list(range(out)))
    read = torch.zeros(out, dtype=torch.bool)
    readers = 0
    for item in group.items:
        target, reads = item.dep.target.module, "in_channels" in getattr(item.dep.handler, "__name__", "")
        if reads and isinstance(target, _LAYERS) and _plain(target):
            readers += 1
            used = (target.weight.detach().transpose(0, 1).reshape(target.weight.shape[1], -1) != 0).any(1)
            read[torch.tensor(item.root_idxs)[used[torch.tensor(item.idxs)]]] = True
        elif reads or not (isinstance(target, _LAYERS + _NORMS) or type(target).__name__.startswith("_")):
            return 0  # a layer or op we do not model reads these channels: leave them
    unread = torch.nonzero(~read).flatten()
    if readers == 0 or len(unread) == 0:
        return 0
    drop = set(unread.tolist())
    for item in group.items:
        target = item.dep.target.module
        if isinstance(target, _LAYERS + _NORMS) and "out_channels" in getattr(item.dep.handler, "__name__", ""):
            idxs = [i for i, r in zip(item.idxs, item.root_idxs, strict=True) if r in drop]
            for p in (target.weight, target.bias):
                if p is not None:
                    p.data[idxs] = 0
    return len(unread)
