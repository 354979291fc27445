"""What removing channels costs and saves, per dependency group — NetAdapt's tables — and the path they give.

For each group (layers coupled by residual adds count as one) and a few shares of its channels:
the calibration loss with only that group pruned (eval only), and what the model then saves in the
search's objective: measured latency on the run's device, or multiply-accumulates, or parameters.
The path runs from the dense model to every group at its last share, one step at a time, cheapest
loss per unit saved first; a channel search walks it (:mod:`compress.prune.channel_search`).
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import heapq
import json
import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from compress.analysis.allocation import monotone
from compress.analysis.sensitivity import calibration_split
from compress.data import Samples
from compress.distributed import Dist
from compress.errors import InputError
from compress.evaluate import evaluate, measure_latency
from compress.export import onnx
from compress.files import write_atomic
from compress.layers import count_macs
from compress.method import Workspace
from compress.prune.channel_plan import GroupPlan

SHARES = (0.25, 0.5, 0.625, 0.75, 0.875)  # shares of a group's channels the tables measure
Shares = dict[str, float]  # group name → share of its channels removed
Pruner = Callable[[nn.Module, dict[str, int]], None]  # prunes a model in place by per-group counts


def counts(groups: list[GroupPlan], shares: Shares) -> dict[str, int]:
    """Channels each group loses at ``shares`` (rounded to what the group allows: it keeps at least one channel, or one per attention head)."""
    return {g.name: g.allowed(round(g.channels * shares.get(g.name, 0.0))) for g in groups}


def removed_share(groups: list[GroupPlan], shares: Shares) -> float:
    """% of all prunable channels removed at ``shares``."""
    removed = counts(groups, shares)
    return 100.0 * sum(removed.values()) / max(1, sum(g.channels for g in groups))


def cost_function(objective: str, example: torch.Tensor, batch: int, device: torch.device,
                  int8: bool = False, dist: Dist | None = None, quick: bool = False) -> Callable[[nn.Module], float]:
    """The search's objective for a model: latency (ms at ``batch`` on ``device``; with ``int8``, of the
    model as the run will execute it — int8 through ONNX Runtime on the CPU), MACs or parameters.

    In a job of several, a latency is the mean over the ranks: each rank measures its own device, and
    a rank deciding on its own figures would cut its model differently from the others. ``quick``: one
    median of five passes instead of the least of three medians of three (a climb measures a dozen
    models a step)."""
    def cost(model: nn.Module) -> float:
        if objective == "macs":
            return float(count_macs(model, example[:1].to(device)))
        if objective == "params":
            return float(sum(p.numel() for p in model.parameters()))
        runner, where = (_int8(model, example), torch.device("cpu")) if int8 else (model, device)
        if quick:
            return _mean(measure_latency(runner, example, batch, where, repeats=5, warmup=1) * 1e3, dist)
        # the least of three medians: other load only ever adds time, so the minimum is the steadiest figure
        ms = min(measure_latency(runner, example, batch, where, repeats=3) for _ in range(3)) * 1e3
        return _mean(ms, dist)

    return cost


def speedup_function(objective: str, example: torch.Tensor, batch: int, device: torch.device, dense: nn.Module,
                     int8: bool = False, dist: Dist | None = None) -> Callable[[nn.Module], tuple[float, float]]:
    """How many times below ``dense``'s a model's objective is, and the model's own figure.

    Latency is measured in alternation with the dense model, five rounds, and the speed-up is the median of
    the rounds' ratios: the machine's speed drifts, and a dense latency measured once, minutes before the
    model's, had a search pick a cut at 2.0× that measured 1.95× side by side."""
    if objective != "latency":
        cost = cost_function(objective, example, batch, device)
        base = cost(dense)
        def ratio(model: nn.Module) -> tuple[float, float]:
            value = cost(model)
            return base / max(value, 1e-12), value

        return ratio
    where = torch.device("cpu") if int8 else device
    reference = _int8(dense, example) if int8 else dense

    def speedup(model: nn.Module) -> tuple[float, float]:
        runner = _int8(model, example) if int8 else model
        rounds = [(measure_latency(reference, example, batch, where, repeats=3),
                   measure_latency(runner, example, batch, where, repeats=3)) for _ in range(5)]
        ratio = statistics.median(d / max(m, 1e-12) for d, m in rounds)
        return _mean(ratio, dist), _mean(statistics.median(m for _, m in rounds) * 1e3, dist)

    return speedup


def _mean(value: float, dist: Dist | None) -> float:
    """In a job of several, the mean over the ranks (each measures its own device; all must decide alike)."""
    return value if dist is None else dist.sum(value)[0] / dist.world


def _int8(model: nn.Module, example: torch.Tensor) -> nn.Module:
    float_onnx = onnx.to_onnx(model, example[:1], None, 18)
    return onnx.OrtModule(onnx.quantize(float_onnx, [example[:64].cpu()], "minmax")[0])


def cache_path(model: nn.Module, groups: list[GroupPlan], key: str) -> Path | None:
    """Where measured savings of this architecture are cached (per shapes, device, batch, runtime)."""
    root = os.environ.get("MODELZIP_CACHE") or str(Path.home() / ".cache" / "modelzip")
    shapes = sorted((k, tuple(v.shape)) for k, v in model.state_dict().items())
    text = json.dumps([shapes, [(g.name, g.channels) for g in groups], SHARES, key, torch.__version__], default=str)
    return Path(root) / "latency" / f"{hashlib.sha256(text.encode()).hexdigest()[:32]}.json"


@dataclass
class Tables:
    """Per group and share: loss increase and cost saved; and the dense model's cost."""

    groups: list[GroupPlan]
    loss: dict[str, dict[float, float]]
    saved: dict[str, dict[float, float]]
    base_cost: float


def measure(model: nn.Module, groups: list[GroupPlan], prune: Pruner, cost: Callable[[nn.Module], float],
            ws: Workspace, limit: int = 1000, cache: Path | None = None) -> Tables:
    """Prune each group alone at each share (a copy each time): loss on calibration data, cost saved.

    Savings depend on shapes only: with ``cache`` they are read from (or written to) that file.
    """
    split = calibration(ws, limit)
    cached = _read(cache)
    if ws.run.dist is not None and ws.run.dist.sum(float(bool(cached)))[0] < ws.run.dist.world:
        cached = {}  # every rank measures (the costs are collectives) unless every rank has the cache
    base_loss, base_cost = loss(model, split, ws), cached.get("base", 0.0) if cached else cost(model)
    tables = Tables(groups, {}, {}, base_cost)
    for group in groups:
        for share in SHARES:
            trial = copy.deepcopy(model)
            prune(trial, counts([group], {group.name: share}))
            tables.loss.setdefault(group.name, {})[share] = loss(trial, split, ws) - base_loss
            saved = cached["saved"][group.name][str(share)] if cached else max(0.0, base_cost - cost(trial))
            tables.saved.setdefault(group.name, {})[share] = saved
    if cache is not None and not cached and (ws.run.dist is None or ws.run.dist.main):
        _write(cache, {"base": base_cost, "saved": {g: {str(k): v for k, v in c.items()} for g, c in tables.saved.items()}})
    return tables


def _read(cache: Path | None) -> dict:
    try:
        return json.loads(cache.read_text()) if cache is not None and cache.is_file() else {}
    except (OSError, ValueError):
        return {}


def _write(cache: Path, data: dict) -> None:
    with contextlib.suppress(InputError, OSError):  # a cache that cannot be written is only slower next time
        write_atomic(cache, json.dumps(data).encode())


def calibration(ws: Workspace, limit: int = 1000) -> Samples:
    """What the losses are measured on: at most ``limit`` validation (or training) samples, never the test set."""
    return calibration_split(ws.data, limit)[0].first(limit)


def loss(model: nn.Module, split: Samples, ws: Workspace) -> float:
    """The mean cross-entropy of ``model`` on ``split`` (eval only)."""
    return evaluate(model, split, ws.eval_batch_size, ws.run.device, ws.run.dist).loss


def path(tables: Tables, start: Shares | None = None) -> list[Shares]:
    """Allocations from ``start`` (default: the dense model; shares on the tables' grid) to every group at its
    last share, cheapest loss per unit saved first."""
    losses = {g: monotone({0.0: 0.0, **c}) for g, c in tables.loss.items()}
    saved = {g: monotone({0.0: 0.0, **c}) for g, c in tables.saved.items()}
    steps = {g: sorted(losses[g]) for g in losses}
    current: Shares = {g: (start or {}).get(g, 0.0) for g in steps}
    heap: list[tuple[float, str, int]] = []

    def push(name: str, k: int) -> None:
        if k + 1 < len(steps[name]):
            lo, hi = steps[name][k], steps[name][k + 1]
            gain = max(saved[name][hi] - saved[name][lo], 1e-9 * (hi - lo))  # measured noise: never free
            heapq.heappush(heap, ((losses[name][hi] - losses[name][lo]) / gain, name, k + 1))

    for name in steps:
        push(name, steps[name].index(current[name]))
    out = [dict(current)]
    while heap:
        _, name, k = heapq.heappop(heap)
        current[name] = steps[name][k]
        out.append(dict(current))
        push(name, k)
    return out


def uniform_path(groups: list[GroupPlan], points: int = 20) -> list[Shares]:
    """Every group at the same share, from 0 to 95 % in equal steps (the allocation-free baseline)."""
    return [{g.name: 0.95 * i / points for g in groups} for i in range(points + 1)]
