"""Encode/decode time and peak memory of the artifact format at ResNet-50 scale (25.6 M parameters).

Weights are random, pruned/quantized synthetically. Each scenario runs in a fresh
process so its peak resident memory is its own. Targets: encode ≤ 5 s, decode ≤ 5 s,
peak memory above the process's start ≤ 3× the fp32 model size.

    python benchmarks/artifact.py [--reference]   # --reference: each scenario also without the context coder
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path

SCENARIOS = ("dense-fp32", "sparse-90%", "linear-8bit-per-channel", "codebook-4bit+sparse-50%")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _make(scenario: str):
    import torch
    import torchvision

    from compress.artifact import LinearGrid

    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None)
    grids = {}
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() < 2:
                continue
            if scenario == "sparse-90%":
                p.mul_(torch.rand_like(p) > 0.9)
            elif scenario == "linear-8bit-per-channel":
                scale = p.abs().amax(dim=tuple(range(1, p.dim()))).clamp_min(1e-8) / 127
                grid = LinearGrid(8, scale, torch.full_like(scale, 128, dtype=torch.int32), 0)
                p.copy_(grid.dequantize(grid.quantize(p)))
                grids[name] = grid
            elif scenario.startswith("codebook"):
                book = torch.linspace(float(p.min()), float(p.max()), 16)
                p.copy_(book[torch.randint(0, 16, p.shape)] * (torch.rand_like(p) > 0.5))
    return model, grids


def _run(scenario: str, queue: mp.Queue, context: bool = True) -> None:
    import torch

    import compress
    from compress.artifact import ModelSpec, gridcode

    if not context:  # the reference: a budget that allows nothing (this process only)
        gridcode.Budget.__init__.__defaults__ = (0, 0)

    model, grids = _make(scenario)
    n = sum(p.numel() for p in model.parameters())
    fp32_mb = sum(v.numel() * 4 for v in model.state_dict().values()) / 1e6
    base = _rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.mzip"
        start = time.perf_counter()
        size = compress.save(model, path, ModelSpec("torchvision:resnet50"), grids=grids)
        t_enc = time.perf_counter() - start
        enc_peak = _rss_mb() - base
        del model
        start = time.perf_counter()
        loaded = compress.load(path)
        t_dec = time.perf_counter() - start
        peak = _rss_mb() - base
        ok = isinstance(loaded, torch.nn.Module)
    queue.put((scenario, n, fp32_mb, size, t_enc, t_dec, enc_peak, peak, ok))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reference", action="store_true",
                    help="also run each scenario without the context-adaptive coder (the format-1 encoder's choices)")
    args = ap.parse_args()
    ctx = mp.get_context("spawn")
    print(f"{'scenario':28s} {'params':>11s} {'fp32 MB':>8s} {'file MB':>8s} {'ratio':>6s} "
          f"{'encode s':>8s} {'decode s':>8s} {'peak MB (× fp32)':>17s}")
    for scenario, context in [(s, c) for s in SCENARIOS for c in ((True, False) if args.reference else (True,))]:
        queue: mp.Queue = ctx.Queue()
        proc = ctx.Process(target=_run, args=(scenario, queue, context))
        proc.start()
        name, n, fp32_mb, size, t_enc, t_dec, _, peak, ok = queue.get()
        proc.join()
        name += "" if context else " (no context coder)"
        print(f"{name:28s} {n:11,d} {fp32_mb:8.1f} {size / 1e6:8.2f} {fp32_mb * 1e6 / size:6.1f} "
              f"{t_enc:8.2f} {t_dec:8.2f} {peak:8.0f} ({peak / fp32_mb:.2f}×)  {'ok' if ok else 'FAILED'}")


if __name__ == "__main__":
    main()
