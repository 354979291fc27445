"""Quantization on real MNIST: accuracy, real artifact bytes, int8 speed-up, exact reloads — one process.

Each baseline is trained once through modelzip's pipeline; every variant starts from it.
int8 latency is compared with the same model's fp32 eager forward in the same run
(interleaved, median of repeats).

    python benchmarks/quantize.py --root ../shared/datasets [--only cnn|lenet|int8]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import compress
from common import mnist_recipe, paired_latency

TRAIN = {"mnist-cnn": {"epochs": 3, "batch_size": 64, "optimizer": "adamw", "lr": 0.002, "weight_decay": 1e-4},
         "lenet-300-100": {"epochs": 8, "batch_size": 128, "optimizer": "adamw", "lr": 0.002, "weight_decay": 1e-4},
         "resnet20": {"epochs": 1, "batch_size": 128, "optimizer": "adamw", "lr": 0.003, "weight_decay": 1e-4}}


def baseline(model: str, root: str, work: Path) -> Any:
    start = time.perf_counter()
    res = compress.run(mnist_recipe(model, root, work / f"{model}-base", [{"train": TRAIN[model]}, "evaluate"]))
    print(f"[{model}] baseline {res.report.final.accuracy:.2f} % in {time.perf_counter() - start:.0f} s; "
          f"fp32 state_dict {res.report.final.state_dict_bytes:,} B")
    return res


def variant(model: str, root: str, work: Path, base: Any, name: str, stages: list[Any]) -> Any:
    start = time.perf_counter()
    res = compress.run(mnist_recipe(model, root, work / name, [*stages, "evaluate"], checkpoint=base.output))
    rep = res.report
    fin = rep.final
    x = res.state.data.test.head(256).x
    runner = res.state.runtime or res.model
    same = torch.equal(compress.load(res.output)(x), runner(x))
    print(f"  {name:<34} acc {rep.rows[rep.baseline].accuracy:.2f} → {fin.accuracy:.2f} ({fin.delta_pp:+.2f} pp)  "
          f"file {fin.size_bytes:,} B = {100 * fin.size_bytes / rep.fp32_bytes:.1f} % of fp32  "
          f"reload identical: {same}  wall {time.perf_counter() - start:.0f} s")
    return res


def cnn(root: str, work: Path) -> None:
    base = baseline("mnist-cnn", root, work)
    variant("mnist-cnn", root, work, base, "linear-8 channel, no finetune", [{"quantize": {"bits": 8}}])
    variant("mnist-cnn", root, work, base, "linear-4 mse, no finetune", [{"quantize": {"bits": 4, "range": "mse"}}])
    variant("mnist-cnn", root, work, base, "linear-4 mse + QAT 2 epochs", [
        {"quantize": {"bits": 4, "range": "mse"}},
        {"finetune": {"epochs": 2, "batch_size": 64, "optimizer": "adamw", "lr": 2e-4}}])
    variant("mnist-cnn", root, work, base, "fp16", [{"quantize": {"bits": 16}}])


def lenet(root: str, work: Path) -> None:
    base = baseline("lenet-300-100", root, work)
    variant("lenet-300-100", root, work, base, "kmeans-2, no finetune", [{"quantize": {"bits": 2, "method": "kmeans"}}])
    variant("lenet-300-100", root, work, base, "kmeans-2 + finetune 4 epochs", [
        {"quantize": {"bits": 2, "method": "kmeans"}},
        {"finetune": {"epochs": 4, "batch_size": 128, "optimizer": "adamw", "lr": 3e-4}}])


def int8(root: str, work: Path) -> None:
    base = baseline("resnet20", root, work)
    for observer in ("histogram", "minmax", "percentile"):
        res = variant("resnet20", root, work, base, f"int8 execute ({observer})",
                      [{"quantize": {"bits": 8, "execute": "int8", "observer": observer}}])
    x = res.state.data.test.head(256).x
    t_fp32, t_int8 = paired_latency(base.model, res.state.runtime, x)
    runtime = res.state.execute.get("runtime", "torch.ao")
    where = f"{res.state.execute['engine']} engine" if runtime == "torch.ao" else runtime
    print(f"  batch 256 latency: fp32 eager {t_fp32 * 1e3:.1f} ms, int8 {t_int8 * 1e3:.1f} ms → "
          f"{t_fp32 / t_int8:.2f}× faster ({runtime}: {where})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", default="../shared/datasets")
    ap.add_argument("--only", choices=["cnn", "lenet", "int8"])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, job in {"cnn": cnn, "lenet": lenet, "int8": int8}.items():
            if args.only in (None, name):
                job(args.root, work)


if __name__ == "__main__":
    main()
