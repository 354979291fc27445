"""Deployment exports, each run in its own runtime, against PyTorch eager — one process, interleaved timings.

For mnist-cnn and resnet20 (trained on real MNIST; dense and channel-pruned 50 % + 1 epoch) and
torchvision resnet18 / mobilenet_v3_small (random init, 3×224×224): torch fp32 eager, ONNX Runtime
fp32, ONNX Runtime int8 (static QDQ, per-channel ±127 weights), torch.export program — top-1 on the
10,000 MNIST test images (trained nets), latency at batch 1 and 64 (median of interleaved rounds),
file size.

    python benchmarks/export.py --root ../shared/datasets [--only mnist|torchvision]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

import torch

import compress
from common import mnist_recipe
from compress.context import RunContext
from compress.data import Split
from compress.evaluate import evaluate, measure_latency
from compress.export import export
from compress.models import build_model
from compress.recipe import ExportConfig

TRAIN = {"mnist-cnn": {"epochs": 3, "batch_size": 64, "optimizer": "adamw", "lr": 0.002, "weight_decay": 1e-4},
         "resnet20": {"epochs": 1, "batch_size": 128, "optimizer": "adamw", "lr": 0.003, "weight_decay": 1e-4}}
FINETUNE = {"epochs": 1, "batch_size": 128, "optimizer": "adamw", "lr": 5e-4}
CPU = torch.device("cpu")


def variants(model: torch.nn.Module, example: torch.Tensor, train: Split) -> dict[str, tuple[torch.nn.Module, int]]:
    """Runner and file size of each export of ``model``, plus the eager model itself."""
    out: dict[str, tuple[torch.nn.Module, int]] = {"torch fp32 eager": (model.eval(), 0)}
    ctx = RunContext(CPU, 0)
    for name, cfg in (("onnxruntime fp32", ExportConfig()), ("onnxruntime int8", ExportConfig(int8=True)),
                      ("torch.export (pt2)", ExportConfig(format="pt2"))):
        exported = export(model, cfg, example, train, ctx, "minmax")
        out[name] = (exported.runner, len(exported.data))
    return out


def latencies(runners: dict[str, torch.nn.Module], example: torch.Tensor, rounds: int = 5) -> dict[str, tuple]:
    """Median latency at batch 1 and 64 per runner, measured in interleaved rounds so load drifts hit all."""
    times: dict[str, dict[int, list[float]]] = {k: {1: [], 64: []} for k in runners}
    for _ in range(rounds):
        for name, runner in runners.items():
            for batch in (1, 64):
                times[name][batch].append(measure_latency(runner, example, batch, CPU, repeats=5))
    return {k: (statistics.median(v[1]) * 1e3, statistics.median(v[64]) * 1e3) for k, v in times.items()}


def table(title: str, rows: list[tuple[str, Any, float, float, int]]) -> None:
    print(f"\n{title}")
    print(f"  {'variant':<38} {'top-1 %':>8} {'batch 1':>10} {'batch 64':>10} {'file bytes':>12}")
    for name, acc, t1, t64, size in rows:
        acc_text = f"{acc:.2f}" if acc is not None else "—"
        print(f"  {name:<38} {acc_text:>8} {t1:>8.2f} ms {t64:>7.1f} ms {size:>12,}", flush=True)


def mnist(root: str, work: Path) -> None:
    for model in ("mnist-cnn", "resnet20"):
        base = compress.run(mnist_recipe(model, root, work / model, [{"train": TRAIN[model]}, "evaluate"]))
        pruned = compress.run(mnist_recipe(model, root, work / f"{model}-pruned",
                                           [{"prune": {"rate": 50, "granularity": "channel", "scope": "layer"}},
                                            {"finetune": FINETUNE}, "evaluate"], base.output))
        data = base.state.data
        rows, runners = [], {}
        for label, res in (("dense", base), ("channel-pruned 50 %", pruned)):
            found = variants(res.model.cpu(), data.test.head(1).x, data.train)
            for name, (runner, size) in found.items():
                key = f"{label}: {name}"
                runners[key] = runner
                acc = evaluate(runner, data.test, 1000, CPU).accuracy
                rows.append((key, acc, size or res.report.final.size_bytes))
        timed = latencies(runners, data.test.head(64).x)
        table(f"[{model}] trained on MNIST ({base.report.final.accuracy:.2f} % eager); artifact sizes for eager rows",
              [(k, acc, *timed[k], size) for k, acc, size in rows])
        dense = timed["dense: torch fp32 eager"][1]
        best = timed["channel-pruned 50 %: onnxruntime int8"][1]
        print(f"  channel-pruned + int8 (ONNX Runtime) vs dense fp32 eager at batch 64: {dense / best:.2f}× faster")


def torchvision_nets(work: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(512, 3, 224, 224, generator=gen)
    train = Split(images, torch.zeros(len(images), dtype=torch.int64))
    for name in ("resnet18", "mobilenet_v3_small"):
        torch.manual_seed(0)
        model = build_model(f"torchvision:{name}", {}).eval()
        found = variants(model, images[:1], train)
        timed = latencies({k: r for k, (r, _) in found.items()}, images[:64], rounds=3)
        fp32 = sum(p.numel() * 4 for p in model.state_dict().values())
        table(f"[{name}] random init, 3×224×224 (int8 calibrated on 4 × 128 random images; eager row: fp32 weights)",
              [(k, None, *timed[k], size or fp32) for k, (_, size) in found.items()])
        eager, int8 = timed["torch fp32 eager"][1], timed["onnxruntime int8"][1]
        print(f"  onnxruntime int8 vs torch fp32 eager at batch 64: {eager / int8:.2f}× faster")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", default="../shared/datasets")
    ap.add_argument("--only", choices=["mnist", "torchvision"])
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "mnist"):
            mnist(args.root, Path(tmp))
        if args.only in (None, "torchvision"):
            torchvision_nets(Path(tmp))


if __name__ == "__main__":
    main()
