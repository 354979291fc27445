"""Per-layer bit widths: from a sensitivity scan (``allocation: sensitivity``) or an accuracy budget.

The budget search never fine-tunes: one eval-only scan orders the narrowing steps (cheapest
loss increase per weight-bit first), then bisection along that path evaluates the whole model
quantized at each probed point and keeps the narrowest one inside the budget.
"""
from __future__ import annotations

import time
from dataclasses import asdict
from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from compress import allocation, sensitivity
from compress.evaluate import evaluate
from compress.layers import count_nonzero
from compress.quantize import linear
from compress.quantize.kmeans import SharedWeights
from compress.recipe.schema import QuantizeConfig
from compress.report import Trial

if TYPE_CHECKING:
    from compress.pipeline import Budget, PipelineState

Params = dict[str, nn.Parameter]


def projection(cfg: QuantizeConfig) -> sensitivity.Projection:
    """``(weights, bits) → weights`` as the stage's method would quantize them (zeros stay zero; 16 = fp16)."""
    def narrow(w: torch.Tensor, bits: int) -> torch.Tensor:
        if cfg.method == "kmeans":
            shared = SharedWeights(nn.Parameter(w.detach().clone()), bits)
            shared.tie()
            return shared.param.detach()
        return linear.project(w, linear.fit_grid(w, bits, per_channel=cfg.granularity == "channel",
                                                 symmetric=cfg.symmetric, method=cfg.range))

    def project(w: torch.Tensor, bits: int) -> torch.Tensor:
        return w.half().to(w.dtype) if bits == 16 else narrow(w, bits)

    return project


def widths(cfg: QuantizeConfig) -> list[int]:
    """Bit widths a scan considers: 8 down to the narrowest the method can hold."""
    return list(range(8, 0 if cfg.method == "kmeans" or not cfg.symmetric else 1, -1))


def _scan(state: PipelineState, cfg: QuantizeConfig, params: Params) -> sensitivity.Sensitivity:
    state.ctx.progress.note("sensitivity scan for per-layer bits")
    state.model.eval()
    return sensitivity.measure(state.model, sensitivity.calibration_split(state.data), state.ctx, rates=[],
                               bits=widths(cfg), batch_size=state.eval_batch_size, project=projection(cfg),
                               layers=params)


def allocate(state: PipelineState, cfg: QuantizeConfig, params: Params, mean: float) -> dict[str, int]:
    """Per-layer bits (for ``params``) with weighted mean ≤ ``mean``, narrowest where loss rises least."""
    scan = _scan(state, cfg, params)
    chosen = allocation.bits_for(scan.bits_costs(), scan.params, mean)
    return {f"{m}.weight": b for m, b in chosen.items()}


@torch.no_grad()
def search(state: PipelineState, cfg: QuantizeConfig, params: Params, fixed: dict[str, int],
           budget: Budget) -> dict[str, int]:
    """The narrowest per-layer bits for ``params`` along the greedy path that keeps accuracy inside
    ``budget`` (the ``fixed`` layers quantized to their own widths meanwhile).

    When not even 8 bits everywhere is inside, fp16 (16) everywhere is returned: the least damage.
    """
    begin = time.perf_counter()
    scan = _scan(state, cfg, params)
    path = allocation.bits_path(scan.bits_costs(), scan.params)
    project = projection(cfg)
    every = {n: p for n, p in state.model.named_parameters() if n in params or n in fixed}
    original = {n: p.detach().clone() for n, p in every.items()}
    kept = count_nonzero(params.values())
    sparsity = round(100.0 * (1 - kept / max(1, sum(p.numel() for p in params.values()))), 3)  # from pruning
    trials = [Trial("scan", sparsity, scan.baseline, kept, True, round(time.perf_counter() - begin, 3), bits=32.0)]

    def passes(k: int) -> bool:
        start = time.perf_counter()
        bits = {**fixed, **{f"{m}.weight": b for m, b in path[k].items()}}
        for name, p in every.items():
            p.copy_(project(original[name], bits[name]))
        acc = evaluate(state.model, state.data.split(budget.split), state.eval_batch_size, state.ctx.device).accuracy
        nonzero = count_nonzero(params.values())
        for name, p in every.items():
            p.copy_(original[name])
        met = acc >= budget.floor
        trials.append(Trial("bits", sparsity, acc, nonzero, met, round(time.perf_counter() - start, 3),
                            bits=round(allocation.mean_bits(path[k], scan.params), 3)))
        return met

    lo, hi = 0, len(path)  # invariant: path[lo] passes (once checked), path[hi] fails (or is past the end)
    chosen: dict[str, int] | None = None
    if passes(0):
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if passes(mid) else (lo, mid)
        chosen = {f"{m}.weight": b for m, b in path[lo].items()}
    state.search.extend(asdict(t) for t in trials)
    seconds = sum(t.seconds for t in trials)
    if chosen is None:
        state.notes.append(f"bits search: even 8 bits everywhere is outside the budget; kept fp16 ({seconds:.1f} s)")
        return dict.fromkeys(params, 16)
    state.notes.append(f"bits search: {len(trials)} trials, {seconds:.1f} s, chose a mean of "
                       f"{allocation.mean_bits(path[lo], scan.params):.2f} bits ("
                       + ", ".join(f"{m} {b}" for m, b in path[lo].items()) + ")")
    return chosen
