"""Peak memory of ``compress.save`` and ``compress.load`` on a 600 M-parameter model, against the fp32 size
and against plain ``torch.save``/``torch.load`` of the same state_dict in the same run.

Each step runs in a fresh process, so each peak resident set (VmHWM, which includes the Python and
torch runtime) is its own; a first process builds the model, makes it 80 % sparse (per-tensor
magnitude) or puts it on 8-bit per-channel grids and writes it with ``torch.save``; each save
process reads that file into a model without initialising one (so it holds the model once), resets
its peak and saves — its peak is the model in memory plus what the save adds. The load process
rebuilds the model from the artifact and checks every tensor bit-exactly against the plain copy
(memory-mapped, after the peak is read).
Target (issue #20): both peaks ≤ 2× the fp32 model.

    python benchmarks/memory.py [--model vit_h_14] [--scenario sparse-80%|8-bit]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import time
from pathlib import Path
from typing import Any

from fresh import in_process, peak_gib, reset_peak


def _build(name: str, scenario: str) -> tuple[Any, dict[str, Any]]:
    import torch
    import torchvision

    from compress.artifact import LinearGrid

    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None).eval()
    grids = {}
    with torch.no_grad():
        for key, p in model.named_parameters():
            if p.dim() < 2:
                continue
            if scenario == "sparse-80%":
                flat = p.abs().flatten()
                p.mul_(p.abs() > flat.kthvalue(int(0.8 * flat.numel())).values)
            else:
                scale = p.abs().amax(dim=tuple(range(1, p.dim()))).clamp_min(1e-8) / 127
                grid = LinearGrid(8, scale, torch.full_like(scale, 128, dtype=torch.int32), 0)
                p.copy_(grid.dequantize(grid.quantize(p)))
                grids[key] = grid
    return model, grids


def _prepare(name: str, scenario: str, folder: str, queue: mp.Queue) -> None:
    """Build and prepare the model, write it as a plain state_dict (the reference the others start from)."""
    import torch

    model, grids = _build(name, scenario)
    torch.save(model.state_dict(), Path(folder) / "m.pt")
    torch.save({k: {"bits": g.bits, "scale": g.scale, "zero": g.zero_point, "axis": g.axis} for k, g in grids.items()},
               Path(folder) / "grids.pt")
    queue.put({"params": sum(p.numel() for p in model.parameters()),
               "fp32": sum(v.numel() * 4 for v in model.state_dict().values()) / 2**30, "built": peak_gib(),
               "file": (Path(folder) / "m.pt").stat().st_size})


def _model_in_memory(name: str, folder: str) -> tuple[Any, dict[str, Any]]:
    """The prepared model, its tensors read into memory once (no initialisation, no second copy)."""
    import torch
    import torchvision

    from compress.artifact import LinearGrid

    model = torchvision.models.get_model(name, weights=None).to("meta")
    state = torch.load(Path(folder) / "m.pt", weights_only=True)
    model.load_state_dict(state, assign=True)
    raw = torch.load(Path(folder) / "grids.pt", weights_only=True)
    grids = {k: LinearGrid(g["bits"], g["scale"], g["zero"], g["axis"]) for k, g in raw.items()}
    return model.eval(), grids


def _save(name: str, folder: str, queue: mp.Queue) -> None:
    import compress

    model, grids = _model_in_memory(name, folder)
    reset_peak()  # the peak from here is the model in memory plus what the save adds
    start = time.perf_counter()
    size = compress.save(model, Path(folder) / "m.mzip", f"torchvision:{name}", grids=grids)
    queue.put({"peak": peak_gib(), "seconds": time.perf_counter() - start, "file": size})


def _torch_save(name: str, folder: str, queue: mp.Queue) -> None:
    import torch

    model, _ = _model_in_memory(name, folder)
    reset_peak()
    start = time.perf_counter()
    torch.save(model.state_dict(), Path(folder) / "again.pt")
    queue.put({"peak": peak_gib(), "seconds": time.perf_counter() - start,
               "file": (Path(folder) / "again.pt").stat().st_size})


def _load(name: str, folder: str, queue: mp.Queue) -> None:
    import torch

    import compress

    start = time.perf_counter()
    model = compress.load(Path(folder) / "m.mzip")
    seconds, peak = time.perf_counter() - start, peak_gib()
    reference = torch.load(Path(folder) / "m.pt", mmap=True, weights_only=True)
    exact = all(torch.equal(v, reference[k]) for k, v in model.state_dict().items()) and \
        set(model.state_dict()) == set(reference)
    queue.put({"peak": peak, "seconds": seconds, "exact": exact})


def _torch_load(name: str, folder: str, queue: mp.Queue) -> None:
    import torch
    import torchvision

    start = time.perf_counter()
    model = torchvision.models.get_model(name, weights=None)
    model.load_state_dict(torch.load(Path(folder) / "m.pt", weights_only=True))
    queue.put({"peak": peak_gib(), "seconds": time.perf_counter() - start})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vit_h_14")
    parser.add_argument("--scenario", default="sparse-80%", choices=["sparse-80%", "8-bit"])
    parser.add_argument("--folder", default=None, help="where the files go (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.folder) as folder:
        prepared = in_process(_prepare, args.model, args.scenario, folder)
        ours = in_process(_save, args.model, folder)
        plain = in_process(_torch_save, args.model, folder)
        back = in_process(_load, args.model, folder)
        plain_back = in_process(_torch_load, args.model, folder)
    fp32 = prepared["fp32"]
    print(f"{args.model} ({prepared['params']:,} parameters, fp32 {fp32:.2f} GiB), {args.scenario}")
    print(f"{'step':26s} {'peak RSS GiB':>12s} {'× fp32':>7s} {'seconds':>8s} {'file MiB':>9s}")
    rows = [("build + prepare (benchmark)", prepared["built"], None, None),
            ("compress.save", ours["peak"], ours["seconds"], ours["file"]),
            ("torch.save(state_dict)", plain["peak"], plain["seconds"], plain["file"]),
            ("compress.load", back["peak"], back["seconds"], None),
            ("build + torch.load + load", plain_back["peak"], plain_back["seconds"], None)]
    for label, peak, seconds, size in rows:
        print(f"{label:26s} {peak:12.2f} {peak / fp32:7.2f} {'' if seconds is None else f'{seconds:8.1f}':>8s} "
              f"{'' if size is None else f'{size / 2**20:9.1f}':>9s}")
    print(f"round trip bit-exact: {back['exact']}")


if __name__ == "__main__":
    main()
