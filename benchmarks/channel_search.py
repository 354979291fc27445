"""Channel pruning searched under an accuracy budget vs uniform channel pruning at the same MACs, and a
speed target — on real MNIST, same baseline and fine-tuning budget, one process, interleaved latencies.

For each model: train once; (a) a fixed-rate channel run (50 % per layer + fine-tune) for the cost
reference; (b) ``--max-drop`` search (sensitivity allocation, objective latency); (c) uniform channel
pruning at the per-layer rates on both sides of the MACs (b) reached (uniform counts move in steps, so no
rate lands on them exactly), same fine-tuning, and both interpolated linearly in MACs to (b)'s; latency
at batch 256 of dense, (b) and (c) measured in interleaved rounds. For mnist-cnn also ``--target-speedup 2``.
Every run holds out 10 % of the training images and decides (budget checks, trace, Δ) on them; the test
split is measured once per model here.

    python benchmarks/channel_search.py --root ../shared/datasets [--models mnist-cnn resnet20] [--max-drop 0.3]
"""
from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import compress
from common import mnist_recipe
from compress.evaluate import evaluate, measure_latency
from compress.layers import count_macs
from compress.method import Workspace
from compress.prune import structured
from compress.recipe import ChannelPrune

TRAIN = {"mnist-cnn": {"epochs": 3, "batch_size": 64, "optimizer": "adamw", "lr": 0.002, "weight_decay": 1e-4},
         "resnet20": {"epochs": 1, "batch_size": 128, "optimizer": "adamw", "lr": 0.003, "weight_decay": 1e-4}}
FINETUNE = {"epochs": 4, "batch_size": 128, "optimizer": "adamw", "lr": 2e-3}
VAL = 0.1  # share of the training images held out: searches decide there, the test split is measured once
ON_VAL = {"evaluate": {"split": "val"}}
CPU = torch.device("cpu")


def timed(recipe: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    res = compress.run(recipe)
    return res, time.perf_counter() - start


def uniform_rates_for(base: Any, macs: float) -> tuple[float, float]:
    """The per-layer channel rates on either side of ``macs`` multiply-accumulates: the highest whose pruned
    model has more and the lowest whose model has at most as many (bisection on copies)."""
    model, data = base.model.cpu().eval(), base.state.data
    ws = Workspace(data, base.state.ctx)
    example = data.test.head(1).x
    lo, hi = 0.0, 95.0
    for _ in range(12):
        mid = (lo + hi) / 2
        trial = copy.deepcopy(model)
        cfg = ChannelPrune(rate=mid, scope="layer")
        plans = structured.plan_groups(trial, cfg, ws, example)
        structured.prune_counts(trial, cfg, ws, example, {p.name: p.remove for p in plans})
        lo, hi = (mid, hi) if count_macs(trial, example) > macs else (lo, mid)
    return lo, hi


def latencies(models: dict[str, torch.nn.Module], x: torch.Tensor, rounds: int = 7) -> dict[str, float]:
    times: dict[str, list[float]] = {k: [] for k in models}
    for _ in range(rounds):
        for name, model in models.items():
            times[name].append(measure_latency(model.cpu().eval(), x, len(x), CPU, repeats=5))
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def recipe(model: str, root: str, out: Path, stages: list[Any], checkpoint: Path | None = None,
           max_drop: float | None = None) -> Any:
    """A run measured on the validation split throughout (an evaluate stage before the first compression
    makes the budget's baseline a validation figure)."""
    pipeline = [ON_VAL, *stages, ON_VAL] if checkpoint is not None else [*stages, ON_VAL]
    return mnist_recipe(model, root, out, pipeline, checkpoint, max_drop, val_fraction=VAL)


def test_top1(res: Any) -> float:
    """Top-1 % on the test split, measured here once per model (no run decided anything on it)."""
    return evaluate(res.model.cpu().eval(), res.state.data.test, 1000, CPU).accuracy


def compare(model: str, root: str, work: Path, max_drop: float) -> None:
    base = compress.run(recipe(model, root, work / f"{model}-base", [{"train": TRAIN[model]}]))
    acc0 = test_top1(base)
    print(f"\n[{model}] baseline {acc0:.2f} % test ({base.report.final.accuracy:.2f} % val), "
          f"MACs {base.report.final.macs:,}", flush=True)
    fixed, t_fixed = timed(recipe(model, root, work / f"{model}-fixed", [
        {"prune": {"granularity": "channel", "rate": 50, "scope": "layer"}}, {"finetune": FINETUNE}], base.output))
    search, t_search = timed(recipe(model, root, work / f"{model}-search", [
        {"prune": {"granularity": "channel", "objective": "latency", "finetune": FINETUNE}}], base.output,
        max_drop=max_drop))
    for i, t in enumerate(search.report.search, 1):
        print(f"  {i:>2} {t.phase:<6} channels removed {t.rate:5.1f} %  acc {t.accuracy or 0:6.2f} %  "
              f"{'in' if t.met else 'out'}  {t.seconds:.1f} s")
    rates = dict(zip(("above", "below"), uniform_rates_for(base, search.report.final.macs), strict=True))
    uniform = {side: timed(recipe(model, root, work / f"{model}-uniform-{side}", [
        {"prune": {"granularity": "channel", "rate": rate, "scope": "layer"}}, {"finetune": FINETUNE}], base.output))
        for side, rate in rates.items()}
    lat = latencies({"dense": base.model, "search": search.model, **{k: r.model for k, (r, _) in uniform.items()}},
                    base.state.data.test.head(256).x)
    print(f"  {'variant':<40} {'test %':>8} {'Δ pp':>7} {'MACs':>12} {'batch 256':>11} {'speed-up':>9} {'wall':>7}")
    rows = [("dense", base, 0.0, "dense"), ("fixed 50 % per layer (cost reference)", fixed, t_fixed, None),
            (f"search --max-drop {max_drop}", search, t_search, "search"),
            *[(f"uniform {rate:.1f} % (MACs {side} the search's)", *uniform[side], side)
              for side, rate in rates.items()]]
    accs = {}
    for name, res, seconds, key in rows:
        ms = f"{lat[key]:8.1f} ms" if key else " " * 11
        up = f"{lat['dense'] / lat[key]:8.2f}×" if key else " " * 9
        accs[key] = acc = test_top1(res)
        print(f"  {name:<40} {acc:8.2f} {acc - acc0:+7.2f} "
              f"{res.report.final.macs:>12,} {ms} {up} {seconds:6.0f} s")
    at_macs(search.report.final.macs, {k: uniform[k][0].report.final.macs for k in uniform}, accs, lat, acc0)
    print(f"  search cost: {t_search / t_fixed:.2f}× one fixed-rate channel run; constraint met: "
          f"{search.report.constraint.met}", flush=True)
    if model == "mnist-cnn":
        target(base, root, work, acc0)


def at_macs(macs: float, uniform_macs: dict[str, float], accs: dict[str | None, float], lat: dict[str, float],
            acc0: float) -> None:
    """Uniform pruning interpolated linearly in MACs to the search's MACs, against the search."""
    above, below = uniform_macs["above"], uniform_macs["below"]
    w = (macs - below) / (above - below) if above > below else 0.0  # weight of the "above" run
    acc = w * accs["above"] + (1 - w) * accs["below"]
    ms = w * lat["above"] + (1 - w) * lat["below"]
    print(f"  {'uniform interpolated to the same MACs':<40} {acc:8.2f} {acc - acc0:+7.2f} {macs:>12,.0f} "
          f"{ms:8.1f} ms {lat['dense'] / ms:8.2f}×")
    print(f"  search vs uniform at the same MACs: {accs['search'] - acc:+.2f} pp, "
          f"{ms / lat['search']:.2f}× as fast", flush=True)


def target(base: Any, root: str, work: Path, acc0: float) -> None:
    fast, t_fast = timed(recipe("mnist-cnn", root, work / "cnn-target", [
        {"prune": {"granularity": "channel", "target_speedup": 2.0, "objective": "latency", "finetune": FINETUNE}}],
        base.output))
    lat = latencies({"dense": base.model, "target": fast.model}, base.state.data.test.head(256).x)
    c = fast.report.constraint
    acc = test_top1(fast)
    print(f"  --target-speedup 2: test {acc:.2f} % ({acc - acc0:+.2f} pp), "
          f"MACs {fast.report.final.macs:,}, batch 256 {lat['dense']:.1f} → {lat['target']:.1f} ms = "
          f"{lat['dense'] / lat['target']:.2f}× (interleaved medians; the run's own rows: {c.speedup:.2f}×), "
          f"{t_fast:.0f} s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", default="../shared/datasets")
    ap.add_argument("--models", nargs="+", default=["mnist-cnn", "resnet20"])
    ap.add_argument("--max-drop", type=float, default=0.3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            compare(model, args.root, Path(tmp), args.max_drop)


if __name__ == "__main__":
    main()
