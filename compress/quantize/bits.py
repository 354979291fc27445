"""Bits per layer: ``layer_bits`` overrides, then a budget search, a sensitivity allocation or ``bits``.

The budget search never fine-tunes: one eval-only scan orders the narrowing steps (cheapest
loss increase per weight-bit first), then the search driver bisects along that path,
evaluating the whole model quantized at each probed point, and keeps the narrowest one inside
the budget. When not even 8 bits everywhere is inside, the weights are kept as fp16.
"""
from __future__ import annotations

import time

import torch
import torch.nn as nn

from compress.analysis import allocation
from compress.analysis.search import Knob, search
from compress.analysis.sensitivity import Projection, Sensitivity, calibration_split
from compress.layers import count_nonzero, layer_of, per_layer
from compress.method import Budget, Outcome, Workspace
from compress.recipe.methods import QuantizeBase
from compress.report import Trial

Params = dict[str, nn.Parameter]


def choose_bits(model: nn.Module, cfg: QuantizeBase, ws: Workspace, params: Params, project: Projection,
                widths: list[int], out: Outcome) -> dict[str, int]:
    """Weight name → bits for every tensor in ``params`` (16 = fp16)."""
    fixed = {n: int(per_layer(n, -1, cfg.layer_bits)) for n in params}
    fixed = {n: b for n, b in fixed.items() if b >= 0}
    free = {n: p for n, p in params.items() if n not in fixed}
    if not free:
        return fixed
    if cfg.bits is None:
        if ws.budget is None:  # the recipe validator refuses this; a direct API call gets the same words
            from compress.errors import InputError

            raise InputError(f"quantize: {cfg.needs_amount()}")
        return {**search_bits(model, ws, free, fixed, project, widths, ws.budget, out), **fixed}
    if cfg.allocation == "sensitivity" and cfg.bits != 16:
        scan = _scan(model, ws, free, project, widths)
        names = {layer_of(n): n for n in free}
        chosen = {names[m]: b for m, b in allocation.bits_for(scan.bits_costs(), scan.params, cfg.bits).items()}
        out.notes.append("sensitivity allocation: " + ", ".join(f"{layer_of(n) or '(root)'} {b} bits"
                                                                  for n, b in chosen.items()))
        return {**chosen, **fixed}
    return {**dict.fromkeys(free, int(cfg.bits)), **fixed}


def _scan(model: nn.Module, ws: Workspace, params: Params, project: Projection, widths: list[int]) -> Sensitivity:
    ws.run.progress.note("sensitivity scan for per-layer bits")
    calibration, _ = calibration_split(ws.data)
    return allocation.bits_scan(model, params, project, widths, calibration, ws.run, ws.eval_batch_size)


@torch.no_grad()
def search_bits(model: nn.Module, ws: Workspace, params: Params, fixed: dict[str, int], project: Projection,
                widths: list[int], budget: Budget, out: Outcome) -> dict[str, int]:
    """The narrowest per-layer bits for ``params`` along the greedy path that keeps accuracy inside
    ``budget`` (the ``fixed`` layers quantized to their own widths meanwhile); fp16 when none fits."""
    begin = time.perf_counter()
    scan = _scan(model, ws, params, project, widths)
    path = allocation.bits_path(scan.bits_costs(), scan.params)
    every = {n: p for n, p in model.named_parameters() if n in params or n in fixed}
    original = {n: p.detach().clone() for n, p in every.items()}
    names = {layer_of(n): n for n in params}
    kept = count_nonzero(params.values())
    sparsity = round(100.0 * (1 - kept / max(1, sum(p.numel() for p in params.values()))), 3)  # from pruning
    out.trials.append(Trial("scan", sparsity, scan.baseline, kept, True, round(time.perf_counter() - begin, 3),
                            bits=32.0))

    def probe(level: float) -> Trial:
        start, k = time.perf_counter(), int(level)
        bits = {**fixed, **{names[m]: b for m, b in path[k].items()}}
        for name, p in every.items():
            p.copy_(project(original[name], bits[name]))
        acc = ws.accuracy(model, budget.split)
        nonzero = count_nonzero(params.values())
        for name, p in every.items():
            p.copy_(original[name])
        return Trial("bits", sparsity, acc, nonzero, acc >= budget.floor, round(time.perf_counter() - start, 3),
                     bits=round(allocation.mean_bits(path[k], scan.params), 3))

    result = search(Knob(0, len(path), probe, discrete=True, check_lo=True), budget)
    out.trials.extend(result.trials)
    seconds = sum(t.seconds or 0 for t in out.trials)
    if result.level is None:
        out.notes.append(f"bits search: even 8 bits everywhere is outside the budget; kept fp16 ({seconds:.1f} s)")
        return dict.fromkeys(params, 16)
    chosen = path[int(result.level)]
    out.notes.append(f"bits search: {len(out.trials)} trials, {seconds:.1f} s, chose a mean of "
                     f"{allocation.mean_bits(chosen, scan.params):.2f} bits ("
                     + ", ".join(f"{m or '(root)'}: {b}" for m, b in chosen.items()) + ")")
    return {names[m]: b for m, b in chosen.items()}
