"""Weight quantization: ``apply(state, config)`` puts Linear/Conv weights on 1–8-bit grids or fp16.

Each method is a registered handler (``METHODS``); all of them leave float weights that sit
exactly on their grid (so the artifact stores integer codes) and add a training hook that
keeps them there during a later ``finetune`` stage.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from compress.artifact import LinearGrid
from compress.errors import InputError
from compress.layers import per_layer, weight_params
from compress.quantize import linear
from compress.quantize.kmeans import SharedWeights
from compress.quantize.qat import CodebookHook, STEHook
from compress.recipe.schema import QuantizeConfig
from compress.registry import Registry

if TYPE_CHECKING:
    from compress.pipeline import PipelineState

__all__ = ["METHODS", "apply"]

Params = dict[str, nn.Parameter]
Handler = Callable[["PipelineState", QuantizeConfig, Params, dict[str, int]], None]
METHODS: Registry[Handler] = Registry("quantization method")


def apply(state: PipelineState, cfg: QuantizeConfig) -> None:
    """Quantize ``state.model``'s weights per ``cfg``; grids and bits go to ``state``."""
    if cfg.bits is None and state.budget is None:
        raise InputError("quantize: no bit width given", "pass --bits N (1–8, or 16 for fp16) or set quantize.bits, "
                         "or give an accuracy budget (--max-drop) to search for the fewest bits per layer")
    params = weight_params(state.model, cfg.skip)
    if not params:
        raise InputError("no Linear/Conv weight left to quantize after skip patterns",
                         "check quantize.skip against the model's module names (modelzip inspect shows them)")
    bits = _bit_widths(state, cfg, params)
    half = {n: p for n, p in params.items() if bits[n] == 16}
    if half:
        _fp16(state, half)
    rest = {n: p for n, p in params.items() if bits[n] != 16}
    if rest:
        METHODS.get(cfg.method)(state, cfg, rest, bits)
    state.bits.update({n: float(bits[n]) for n in params})
    if cfg.execute == "int8":
        from compress.quantize.int8 import pick_engine

        pick_engine(state.ctx.device)  # fail now, not after fine-tuning
        state.pending_int8 = cfg
    state.notes.append(_summary(cfg, bits))


def _bit_widths(state: PipelineState, cfg: QuantizeConfig, params: Params) -> dict[str, int]:
    """Bits per weight: ``layer_bits`` overrides, then a budget search, a sensitivity allocation or ``bits``."""
    fixed = {n: int(per_layer(n, -1, cfg.layer_bits)) for n in params}
    fixed = {n: b for n, b in fixed.items() if b >= 0}
    bad = sorted({b for b in fixed.values() if not (1 <= b <= 8 or b == 16)})
    if bad:
        raise InputError(f"quantize.layer_bits: bit widths {bad} are out of range", "use 1–8, or 16 for fp16")
    free = {n: p for n, p in params.items() if n not in fixed}
    if not free:
        return fixed
    if cfg.bits is None and state.budget is not None:
        from compress.quantize.allocate import search

        return {**search(state, cfg, free, fixed, state.budget), **fixed}
    if cfg.allocation == "sensitivity" and cfg.bits is not None and cfg.bits != 16:
        from compress.quantize.allocate import allocate

        chosen = allocate(state, cfg, free, cfg.bits)
        state.notes.append("sensitivity allocation: " + ", ".join(f"{n.removesuffix('.weight')} {b} bits"
                                                                    for n, b in chosen.items()))
        return {**chosen, **fixed}
    return {**dict.fromkeys(free, int(cfg.bits or 8)), **fixed}


def _summary(cfg: QuantizeConfig, bits: dict[str, int]) -> str:
    low = sorted({b for b in bits.values() if b != 16})
    parts = []
    if low:
        label = f"{low[0]}" if len(low) == 1 else f"{low[0]}–{low[-1]}"
        how = (f"{cfg.method}, {cfg.granularity}, {'symmetric' if cfg.symmetric else 'asymmetric'}, {cfg.range}"
               if cfg.method == "linear" else cfg.method)
        parts.append(f"{sum(b != 16 for b in bits.values())} weight tensors to {label} bits ({how})")
    if 16 in bits.values():
        parts.append(f"{sum(b == 16 for b in bits.values())} to fp16")
    return "quantized " + " and ".join(parts)


@torch.no_grad()
def _fp16(state: PipelineState, params: Params) -> None:
    for p in params.values():
        p.copy_(p.half().float())
    state.hooks.append(STEHook(params, lambda _name, w: w.half().to(w.dtype)))


@METHODS.register("linear")
@torch.no_grad()
def _linear(state: PipelineState, cfg: QuantizeConfig, params: Params, bits: dict[str, int]) -> None:
    if cfg.symmetric and any(bits[n] == 1 for n in params):
        raise InputError("symmetric linear quantization needs ≥ 2 bits (1 bit cannot hold −a, 0 and +a)",
                         "use method: kmeans for 1-bit (two shared values) or bits ≥ 2")
    grids: dict[str, LinearGrid] = {}
    for name, p in params.items():
        grids[name] = linear.fit_grid(p, bits[name], per_channel=cfg.granularity == "channel",
                                      symmetric=cfg.symmetric, method=cfg.range)
        p.copy_(linear.project(p, grids[name]))
    state.grids.update(grids)
    state.hooks.append(STEHook(params, lambda name, w: linear.project(w, grids[name])))


@METHODS.register("kmeans")
def _kmeans(state: PipelineState, cfg: QuantizeConfig, params: Params, bits: dict[str, int]) -> None:
    layers = [SharedWeights(p, bits[n]) for n, p in params.items()]
    for layer in layers:
        layer.tie()
    state.hooks.append(CodebookHook(layers))
