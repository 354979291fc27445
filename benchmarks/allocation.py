"""Per-layer allocation at the same total sparsity: uniform vs sensitivity (and global magnitude).

For each model: train once on real MNIST, then at each total rate prune one-shot with
  - uniform:     every layer at the rate (scope: layer),
  - sensitivity: per-layer rates from an eval-only sensitivity scan on training data,
  - global:      one magnitude threshold over all layers (for reference),
and fine-tune the same epochs. Prints top-1 before and after fine-tuning and the per-layer
rates sensitivity chose. Every variant starts from the same checkpoint in the same run.

    python benchmarks/allocation.py --root ../shared/datasets [--models lenet-5 mnist-cnn] [--rates 90 95 98]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import compress
from common import mnist_recipe

TRAIN = {"epochs": 3, "batch_size": 128, "optimizer": "adamw", "lr": 0.002, "weight_decay": 1e-4}
FINETUNE = {"epochs": 1, "batch_size": 128, "optimizer": "adamw", "lr": 5e-4}
VARIANTS = {"uniform": {"scope": "layer"}, "sensitivity": {"allocation": "sensitivity"}, "global": {"scope": "global"}}


def _layer_rates(result: Any) -> str:
    return ", ".join(f"{x.name} {100 * x.sparsity:.1f}%" for x in result.report.layers)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", default="../shared/datasets")
    ap.add_argument("--models", nargs="+", default=["lenet-5", "mnist-cnn"])
    ap.add_argument("--rates", nargs="+", type=float, default=[90.0, 95.0, 98.0])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for model in args.models:
            base = compress.run(mnist_recipe(model, args.root, work / model, [{"train": TRAIN}, "evaluate"]))
            print(f"\n{model}: baseline {base.report.final.accuracy:.2f} %")
            print(f"{'rate':>6} {'allocation':<12} {'one-shot %':>10} {'fine-tuned %':>12} {'seconds':>8}  layers")
            for rate in args.rates:
                for name, options in VARIANTS.items():
                    start = time.perf_counter()
                    res = compress.run(mnist_recipe(model, args.root, work / f"{model}-{rate}-{name}",
                                                    [{"prune": {"rate": rate, **options}}, {"finetune": FINETUNE},
                                                     "evaluate"], base.output), write=False)
                    rows = {r.stage: r for r in res.report.rows}
                    print(f"{rate:6.1f} {name:<12} {rows['prune'].accuracy:10.2f} {res.report.final.accuracy:12.2f} "
                          f"{time.perf_counter() - start:8.1f}  {_layer_rates(res)}", flush=True)


if __name__ == "__main__":
    main()
