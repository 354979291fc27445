"""What every quantization method shares: which weights, how many bits each, fp16, int8, the note.

A method supplies its projection (how a weight tensor lands on a ``bits``-wide grid, for
scans and searches) and how to quantize the chosen weights for real (grids + a training hook);
:func:`quantize_layers` does the rest.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn

from compress.analysis.sensitivity import Projection
from compress.errors import InputError
from compress.layers import module_of, weight_params
from compress.method import Outcome, Workspace
from compress.quantize.bits import choose_bits
from compress.quantize.grids import fit_grid, project
from compress.quantize.qat import STEHook
from compress.recipe.methods import QuantizeBase
from compress.training import TrainHook

Params = dict[str, nn.Parameter]
Apply = Callable[[Params, dict[str, int]], tuple[dict, TrainHook]]  # → (grids, hook keeping them)


def quantize_layers(model: nn.Module, cfg: QuantizeBase, ws: Workspace, project: Projection,
                    widths: list[int], apply: Apply, how: str) -> Outcome:
    """Quantize the Linear/Conv weights ``cfg`` selects; the outcome carries grids, bits and hooks."""
    params = weight_params(model, cfg.skip)
    if not params:
        raise InputError("no Linear/Conv weight left to quantize after skip patterns",
                         "check quantize.skip against the model's module names (modelzip inspect shows them)")
    out = Outcome()
    bits = choose_bits(model, cfg, ws, params, project, widths, out)
    half = {n: p for n, p in params.items() if bits[n] == 16}
    if half:
        out.hooks.append(_fp16(half))
    rest = {n: p for n, p in params.items() if bits[n] != 16}
    if rest:
        grids, hook = apply(rest, bits)
        out.grids.update(grids)
        out.hooks.append(hook)
    out.bits.update({n: float(bits[n]) for n in params})
    if cfg.bias_bits != 32:
        out.hooks.append(_biases(model, params, cfg.bias_bits, out))
    if cfg.execute == "int8":
        from compress.quantize.int8 import pick_engine

        pick_engine(ws.run.device)  # fail now, not after fine-tuning
        out.int8 = cfg
    out.notes.append(_summary(bits, how))
    return out


@torch.no_grad()
def _fp16(params: Params) -> STEHook:
    for p in params.values():
        p.copy_(p.half().float())
    return STEHook(params, lambda _name, w: w.half().to(w.dtype))


@torch.no_grad()
def _biases(model: nn.Module, weights: Params, bits: int, out: Outcome) -> STEHook:
    """The biases of the layers whose weights were quantized: to fp16, or onto a symmetric 8-bit grid per tensor
    (a bias is one value per output: its error shifts a whole output, so no coarser grid is offered)."""
    own = dict(model.named_parameters())
    names = (f"{m}.bias" if m else "bias" for m in map(module_of, weights))
    params = {n: own[n] for n in names if n in own}
    if bits == 16:
        return _fp16(params)
    grids = {n: fit_grid(p, bits, per_channel=False) for n, p in params.items()}
    for name, p in params.items():
        p.copy_(project(p, grids[name]))
    out.grids.update(grids)
    out.notes.append(f"{len(params)} biases onto 8-bit grids")
    return STEHook(params, lambda name, b: project(b, grids[name]))


def _summary(bits: dict[str, int], how: str) -> str:
    low = sorted({b for b in bits.values() if b != 16})
    parts = []
    if low:
        label = f"{low[0]}" if len(low) == 1 else f"{low[0]}–{low[-1]}"
        parts.append(f"{sum(b != 16 for b in bits.values())} weight tensors to {label} bits ({how})")
    if 16 in bits.values():
        parts.append(f"{sum(b == 16 for b in bits.values())} to fp16")
    return "quantized " + " and ".join(parts)
