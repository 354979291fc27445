"""Adaptive per-layer allocation: spend sparsity and bits where the loss notices them least.

Input: per-layer cost curves — the increase of the calibration loss when that layer alone is
pruned to a rate (or quantized to a bit width), measured by ``compress.sensitivity`` without
training. Output: per-layer rates (or bits) meeting a total, chosen greedily by the smallest
cost per weight removed (per weight-bit saved). Costs are made monotone first, so noise in a
curve cannot make a higher rate look cheaper than a lower one.
"""
from __future__ import annotations

import heapq
from collections.abc import Callable

import torch
import torch.nn as nn

from compress.analysis import sensitivity
from compress.context import RunContext
from compress.data import Samples
from compress.errors import InputError
from compress.layers import layer_of, per_layer
from compress.recipe.methods import MAX_RATE

Curve = dict[float, float]  # level (rate % or bits) → loss increase
SCAN_RATES = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 85.0, 90.0, 93.0, 95.0, 97.0, 98.0, 99.0, 99.5]


def monotone(curve: Curve, rising: bool = True) -> Curve:
    """Running maximum of the cost along increasing compression, floored at 0."""
    levels = sorted(curve, reverse=not rising)
    out: Curve = {}
    worst = 0.0
    for level in levels:
        worst = max(worst, curve[level])
        out[level] = worst
    return out


def rates_for(curves: dict[str, Curve], sizes: dict[str, int], rate: float) -> dict[str, float]:
    """Per-layer rates (%) whose weight-weighted mean is ``rate``: the cheapest steps first.

    Each layer starts dense and climbs its measured rate grid; the step with the least cost
    per removed weight goes next. The last step is taken partly, so the total is exact.
    """
    total = sum(sizes.values())
    target = total * rate / 100.0
    costs = {name: monotone({0.0: 0.0, **curve}) for name, curve in curves.items()}
    steps = {name: sorted(c) for name, c in costs.items()}
    reachable = sum(sizes[n] * steps[n][-1] / 100.0 for n in costs)
    if target > reachable + 1e-6:
        raise InputError(f"allocation: a mean rate of {rate:.2f}% is above what the measured rate grid reaches "
                         f"({100 * reachable / total:.2f}%)", "lower the rate")
    chosen = dict.fromkeys(costs, 0.0)
    removed = 0.0
    heap: list[tuple[float, float, str, int]] = []

    def push(name: str, k: int) -> None:
        if k + 1 < len(steps[name]):
            lo, hi = steps[name][k], steps[name][k + 1]
            weights = sizes[name] * (hi - lo) / 100.0
            heapq.heappush(heap, ((costs[name][hi] - costs[name][lo]) / max(weights, 1e-9), hi, name, k + 1))

    for name in costs:
        push(name, 0)
    while removed < target - 1e-9 and heap:
        _, hi, name, k = heapq.heappop(heap)
        gain = sizes[name] * (hi - chosen[name]) / 100.0
        if removed + gain >= target:
            chosen[name] += (target - removed) / sizes[name] * 100.0
            break
        chosen[name], removed = hi, removed + gain
        push(name, k)
    return chosen


def bits_for(curves: dict[str, dict[int, float]], sizes: dict[str, int], mean: float) -> dict[str, int]:
    """Per-layer bit widths whose weight-weighted mean is at most ``mean``.

    Every layer starts at its widest measured width; one bit at a time comes off the layer
    where it costs least per weight-bit saved, until the mean fits.
    """
    path = bits_path(curves, sizes)
    for bits in path:
        if mean_bits(bits, sizes) <= mean + 1e-9:
            return bits
    raise InputError(f"allocation: a mean of {mean:g} bits is below the narrowest measured widths "
                     f"(mean {mean_bits(path[-1], sizes):.2f})", "raise the bit width")


def _narrowing_steps(costs: dict[str, Curve], widths: dict[str, list[int]],
                     sizes: dict[str, int]) -> list[tuple[str, int]]:
    """The greedy order of narrowing steps: (layer, its new width), cheapest per weight-bit first."""
    heap: list[tuple[float, str, int]] = []

    def push(name: str, k: int) -> None:
        if k + 1 < len(widths[name]):
            wide, narrow = widths[name][k], widths[name][k + 1]
            saved = sizes[name] * (wide - narrow)
            heapq.heappush(heap, ((costs[name][narrow] - costs[name][wide]) / saved, name, k + 1))

    for name in widths:
        push(name, 0)
    order: list[tuple[str, int]] = []
    while heap:
        _, name, k = heapq.heappop(heap)
        order.append((name, widths[name][k]))
        push(name, k)
    return order


def bits_path(curves: dict[str, dict[int, float]], sizes: dict[str, int]) -> list[dict[str, int]]:
    """Bit assignments from all-widest to all-narrowest, one greedy step apart (for a budget search)."""
    costs = {name: monotone({float(b): c for b, c in curve.items()}, rising=False) for name, curve in curves.items()}
    widths = {name: sorted((int(b) for b in c), reverse=True) for name, c in costs.items()}
    current = {name: w[0] for name, w in widths.items()}
    out = [dict(current)]
    for name, width in _narrowing_steps(costs, widths, sizes):
        current[name] = width
        out.append(dict(current))
    return out


def mean_bits(bits: dict[str, int], sizes: dict[str, int]) -> float:
    """Weight-weighted mean bit width."""
    return sum(sizes[n] * b for n, b in bits.items()) / max(1, sum(sizes[n] for n in bits))


def rate_allocator(model: nn.Module, params: dict[str, nn.Parameter], scores: dict[str, torch.Tensor],
                   calibration: Samples, ctx: RunContext, layer_rates: dict[str, float],
                   batch_size: int) -> Callable[[float], dict[str, float]]:
    """Per-layer rates for any overall rate, from one eval-only scan (``layer_rates`` stay fixed).

    The returned function maps a weighted-mean rate to module name → rate.
    """
    was_training = model.training
    model.eval()
    scan = sensitivity.measure(model, calibration, ctx, rates=SCAN_RATES, bits=[], batch_size=batch_size,
                               scores=scores, layers=params)
    model.train(was_training)
    fixed = {layer_of(n): per_layer(n, -1.0, layer_rates) for n in params}
    fixed = {m: r for m, r in fixed.items() if r >= 0}
    free = {m: c for m, c in scan.prune_costs().items() if m not in fixed}
    sizes = scan.params

    def rates_at(rate: float) -> dict[str, float]:
        total, free_size = sum(sizes.values()), sum(sizes[m] for m in free)
        rest = (rate * total - sum(r * sizes[m] for m, r in fixed.items())) / max(free_size, 1)
        rates = rates_for(free, {m: sizes[m] for m in free}, min(max(rest, 0.0), MAX_RATE))
        return {**rates, **fixed}

    return rates_at


def bits_scan(model: nn.Module, params: dict[str, nn.Parameter], project: sensitivity.Projection,
              widths: list[int], calibration: Samples, ctx: RunContext, batch_size: int) -> sensitivity.Sensitivity:
    """Each layer alone at each of ``widths`` (eval only): the costs bit allocation orders by."""
    model.eval()
    return sensitivity.measure(model, calibration, ctx, rates=[], bits=widths, batch_size=batch_size,
                               project=project, layers=params)
