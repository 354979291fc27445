"""Accuracy-budget search vs one fixed-rate run, on real MNIST, in the same process.

Trains LeNet-300-100 once, then (a) prunes 90 % and fine-tunes 6 epochs, (b) searches the
highest rate within ``--max-drop`` with the same fine-tuning settings. Prints both wall
times and their ratio, the search trace, and the chosen sparsity.

    python benchmarks/budget.py --root ../shared/datasets [--max-drop 0.2]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import compress
from common import mnist_recipe

TRAIN = {"epochs": 8, "batch_size": 128, "optimizer": "adamw", "lr": 0.002, "weight_decay": 1e-4}
FINETUNE = {"epochs": 6, "batch_size": 128, "optimizer": "adamw", "lr": 5e-4}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", default="../shared/datasets")
    ap.add_argument("--max-drop", type=float, default=0.2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        base = compress.run(mnist_recipe("lenet-300-100", args.root, work / "base", [{"train": TRAIN}, "evaluate"]))
        print(f"baseline {base.report.final.accuracy:.2f} %")
        start = time.perf_counter()
        fixed = compress.run(mnist_recipe("lenet-300-100", args.root, work / "fixed",
                                          [{"prune": {"rate": 90}}, {"finetune": FINETUNE}, "evaluate"], base.output))
        t_fixed = time.perf_counter() - start
        print(f"fixed 90 % + fine-tune: {fixed.report.final.accuracy:.2f} % ({fixed.report.final.delta_pp:+.2f} pp), "
              f"{t_fixed:.1f} s")
        recipe = mnist_recipe("lenet-300-100", args.root, work / "search",
                              [{"prune": {"update_every": 100, "finetune": FINETUNE}}, "evaluate"], base.output,
                              max_drop=args.max_drop)
        start = time.perf_counter()
        found = compress.run(recipe)
        t_search = time.perf_counter() - start
        for i, t in enumerate(found.report.search, 1):
            print(f"  {i:>2} {t.phase:<7} rate {t.rate:6.2f} %  acc {t.accuracy:.2f} %  "
                  f"{'in' if t.met else 'out'}  {t.seconds:.1f} s")
        rep = found.report
        sparsity = 1 - rep.final.nonzero / rep.rows[rep.baseline].nonzero
        print(f"search (max drop {args.max_drop} pp): {rep.final.accuracy:.2f} % ({rep.final.delta_pp:+.2f} pp), "
              f"{100 * sparsity:.2f} % of all parameters zero, file {rep.final.size_bytes:,} B, "
              f"{t_search:.1f} s = {t_search / t_fixed:.2f}× the fixed-rate run; constraint met: {rep.constraint.met}")


if __name__ == "__main__":
    main()
