"""Data-parallel training throughput: the same epoch with 1 and with 2 processes (gloo on CPU, or nccl).

Trains mnist-cnn on real MNIST for one epoch (global batch 128) through ``modelzip run`` and
``modelzip run --nproc 2``, and reports wall time and samples/s of the train stage as each run's
report gives them. On 2 cores expect little gain: the point of the CPU run is correctness.

    python benchmarks/ddp.py --root ../shared/datasets [--nproc 2]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", default="../shared/datasets")
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        recipe = Path(tmp) / "r.yaml"
        recipe.write_text(yaml.safe_dump({
            "model": {"name": "mnist-cnn"}, "data": {"name": "mnist", "root": str(Path(args.root).resolve())},
            "pipeline": [{"train": {"epochs": 1, "batch_size": 128, "optimizer": "adamw", "lr": 0.002}}, "evaluate"],
            "device": args.device, "seed": 0}))
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        for nproc in (1, args.nproc):
            out = Path(tmp) / f"out{nproc}"
            extra = ["--nproc", str(nproc)] if nproc > 1 else []
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "cli", "run", str(recipe), "-o", str(out), "-q", "--json",
                            str(out) + ".json", *extra], env=env, check=True, stdout=subprocess.DEVNULL)
            wall = time.perf_counter() - start
            report = json.loads(Path(str(out) + ".json").read_text())
            train = report["rows"][0]
            print(f"{nproc} process(es): train stage {train['seconds']:.1f} s = {60000 / train['seconds']:,.0f} "
                  f"samples/s, top-1 {train['accuracy']:.2f} %, whole command {wall:.1f} s", flush=True)


if __name__ == "__main__":
    main()
