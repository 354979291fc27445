"""Pruning on real MNIST: accuracy, real artifact bytes and measured speed-ups, in one process.

Trains each baseline once (through modelzip's own pipeline), then runs every pruning
variant from that checkpoint, so all rows share one baseline. Latency of a pruned model is
compared with its dense fp32 eager model in the same run (interleaved, median of repeats).

    python benchmarks/prune.py --root ../shared/datasets [--only lenet|cnn|resnet|methods]
"""
from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import compress
from common import mnist_recipe, paired_latency
from compress.layers import count_macs
from compress.models import build_model
from compress.measure import fp32_state_dict_bytes

TRAIN = {"lenet-300-100": {"epochs": 8, "batch_size": 128, "optimizer": "adamw", "lr": 0.002, "weight_decay": 1e-4},
         "mnist-cnn": {"epochs": 3, "batch_size": 64, "optimizer": "adamw", "lr": 0.002, "weight_decay": 1e-4}}


def baseline(model: str, root: str, work: Path) -> tuple[Path, Any]:
    start = time.perf_counter()
    res = compress.run(mnist_recipe(model, root, work / f"{model}-base", [{"train": TRAIN[model]}, "evaluate"]))
    print(f"[{model}] baseline {res.report.final.accuracy:.2f} % in {time.perf_counter() - start:.0f} s; "
          f"fp32 state_dict {fp32_state_dict_bytes(res.model):,} B")
    return res.output, res


def variant(model: str, root: str, work: Path, ckpt: Path, name: str, stages: list[Any]) -> Any:
    start = time.perf_counter()
    res = compress.run(mnist_recipe(model, root, work / name, [*stages, "evaluate"], checkpoint=ckpt))
    rep = res.report
    base, final = rep.rows[rep.baseline], rep.final
    print(f"  {name:<28} acc {base.accuracy:.2f} → {final.accuracy:.2f} ({final.delta_pp:+.2f} pp)  "
          f"non-zero {final.nonzero:,}  file {final.size_bytes:,} B = 1/{rep.fp32_bytes / final.size_bytes:.1f} "
          f"of fp32  wall {time.perf_counter() - start:.0f} s")
    return res


def lenet(root: str, work: Path) -> None:
    ckpt, _ = baseline("lenet-300-100", root, work)
    ft = {"finetune": {"epochs": 6, "batch_size": 128, "optimizer": "adamw", "lr": 5e-4}}
    variant("lenet-300-100", root, work, ckpt, "oneshot-90", [{"prune": {"rate": 90}}, ft])
    variant("lenet-300-100", root, work, ckpt, "iterative-90 (3 cycles)",
            [{"prune": {"rate": 90, "schedule": "iterative", "iterations": 3,
                        "finetune": {"epochs": 2, "lr": 5e-4, "optimizer": "adamw"}}}])
    variant("lenet-300-100", root, work, ckpt, "gradual-95", [
        {"prune": {"rate": 95, "schedule": "gradual", "update_every": 100,
                   "finetune": {"epochs": 6, "batch_size": 128, "optimizer": "adamw", "lr": 1e-3}}},
        {"finetune": {"epochs": 2, "batch_size": 128, "optimizer": "adamw", "lr": 3e-4}}])


def methods(root: str, work: Path) -> None:
    """Importance methods at the same rate, no fine-tuning (the raw signal)."""
    ckpt, _ = baseline("lenet-300-100", root, work)
    for method in ("magnitude", "taylor", "random"):
        variant("lenet-300-100", root, work, ckpt, f"{method}-90 no finetune", [{"prune": {"rate": 90,
                                                                                          "method": method}}])


def cnn(root: str, work: Path) -> None:
    ckpt, base = baseline("mnist-cnn", root, work)
    res = variant("mnist-cnn", root, work, ckpt, "channel-50 + finetune 2", [
        {"prune": {"rate": 50, "granularity": "channel", "scope": "layer"}},
        {"finetune": {"epochs": 2, "batch_size": 64, "optimizer": "adamw", "lr": 5e-4}}])
    x = base.state.data.test.head(256).x
    t_dense, t_pruned = paired_latency(base.model, res.model, x)
    macs = (count_macs(base.model, x), count_macs(res.model, x))
    print(f"  batch 256 latency: dense {t_dense * 1e3:.1f} ms, pruned {t_pruned * 1e3:.1f} ms → "
          f"{t_dense / t_pruned:.2f}× faster; MACs {macs[0]:,} → {macs[1]:,} ({macs[0] / macs[1]:.2f}×)")
    reloaded = compress.load(res.output)
    same = torch.equal(reloaded(x), res.model.eval()(x))
    print(f"  reload from {res.output.name}: logits identical = {same}")


def resnet(work: Path) -> None:
    """resnet20 on 32×32 inputs (untrained): shapes across residuals, MACs and latency."""
    from compress.context import RunContext
    from compress.data import Dataset, Split
    from compress.method import Workspace
    from compress.methods import apply
    from compress.recipe import ChannelPrune

    dense = build_model("resnet20", {"num_classes": 10, "in_channels": 3}).eval()
    pruned = copy.deepcopy(dense)
    split = Split(torch.randn(256, 3, 32, 32), torch.randint(0, 10, (256,)))
    workspace = Workspace(Dataset("random", split, split, None, 10, False), RunContext(torch.device("cpu"), 0), 256)
    apply(pruned, ChannelPrune(rate=50), workspace)
    t_dense, t_pruned = paired_latency(dense, pruned, split.x, rounds=5)
    params = (sum(p.numel() for p in dense.parameters()), sum(p.numel() for p in pruned.parameters()))
    print(f"[resnet20] channel 50 %: params {params[0]:,} → {params[1]:,}; MACs {count_macs(dense, split.x):,} → "
          f"{count_macs(pruned, split.x):,}; batch 256 {t_dense * 1e3:.0f} → {t_pruned * 1e3:.0f} ms "
          f"({t_dense / t_pruned:.2f}×); output {tuple(pruned(split.x[:2]).shape)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", default="../shared/datasets")
    ap.add_argument("--only", choices=["lenet", "cnn", "resnet", "methods"])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        jobs = {"lenet": lambda: lenet(args.root, work), "methods": lambda: methods(args.root, work),
                "cnn": lambda: cnn(args.root, work), "resnet": lambda: resnet(work)}
        for name, job in jobs.items():
            if args.only in (None, name):
                job()


if __name__ == "__main__":
    main()
