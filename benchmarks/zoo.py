"""Every torchvision classifier through modelzip's own method entry points (random init, small inputs).

Per model, in a fresh process (its peak RSS is its own):
- channel pruning 30 % (global): does the pruned model run, with the classifier's outputs; parameters before/after;
- unstructured 80 % (global magnitude) then ``compress.save``/``compress.load``: max |Δlogit| against the
  pruned model (0 = bit-exact), file size vs the fp32 ``state_dict``;
- 8-bit linear quantization then save/load, the same;
- int8 execution (ONNX Runtime) on a set of convnets: max |Δlogit| against the float model, relative to the
  logits' range.

    python benchmarks/zoo.py [--models resnet18 vit_b_16 …] [--out zoo.jsonl]
"""
from __future__ import annotations

import argparse
import gc
import json
import multiprocessing as mp
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from fresh import peak_gib

INT8 = ("resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_large", "efficientnet_b0", "regnet_y_400mf",
        "densenet121", "shufflenet_v2_x1_0")


def _input_size(name: str) -> int:
    if name.startswith("vit_"):
        return 4 * int(name.rsplit("_", 1)[1])  # 4×4 patches
    if name.startswith("maxvit"):
        return 224  # fixed 7×7 partitions
    if name.startswith("inception"):
        return 96
    return 64


def _kwargs(name: str) -> dict[str, Any]:
    """Constructor arguments (stored in each artifact, so the loader rebuilds the same architecture)."""
    if name.startswith("vit_"):
        return {"image_size": _input_size(name)}
    if name in ("googlenet", "inception_v3"):
        return {"aux_logits": False, "init_weights": False}
    return {}


def _build(name: str) -> Any:
    import torchvision.models as tvm

    return tvm.get_model(name, weights=None, **_kwargs(name)).eval()


def _workspace(x: Any) -> Any:
    import torch

    from compress.context import RunContext
    from compress.data.base import Dataset, Split
    from compress.method import Workspace

    y = torch.zeros(len(x), dtype=torch.long)
    return Workspace(data=Dataset("random", Split(x, y), Split(x, y), None, 1000, False),
                     run=RunContext(device=torch.device("cpu")))


def _round_trip(model: Any, name: str, x: Any, grids: dict[str, Any], folder: str) -> dict[str, Any]:
    import torch

    import compress
    from compress.artifact import ModelSpec
    from compress.measure import fp32_state_dict_bytes

    path = Path(folder) / f"{name}.mzip"
    size = compress.save(model, path, ModelSpec(f"torchvision:{name}", _kwargs(name)), grids=grids)
    with torch.no_grad():
        delta = float((compress.load(path)(x) - model(x)).abs().max())
    return {"ratio": fp32_state_dict_bytes(model) / size, "delta": delta, "file": size}


def _step(result: dict[str, Any], key: str, fn: Any) -> None:
    start = time.perf_counter()
    try:
        result[key] = fn()
    except Exception as exc:  # noqa: BLE001 - a benchmark records each failure and goes on
        result[key] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}",
                       "where": traceback.format_exc().splitlines()[-3][:200]}
    result[key]["seconds"] = round(time.perf_counter() - start, 1)


def _channel(model: Any, ws: Any, x: Any) -> dict[str, Any]:
    import torch

    from compress.prune.channel import prune_channels
    from compress.recipe.methods import ChannelPrune

    before = sum(p.numel() for p in model.parameters())
    prune_channels(model, ChannelPrune(granularity="channel", rate=30), ws)
    with torch.no_grad():
        out = model.eval()(x)
    return {"before": before, "after": sum(p.numel() for p in model.parameters()), "shape": list(out.shape)}


def _unstructured(model: Any, ws: Any, x: Any, name: str, folder: str) -> dict[str, Any]:
    from compress import methods
    from compress.recipe.methods import UnstructuredPrune

    methods.apply(model, UnstructuredPrune(rate=80), ws)
    return _round_trip(model, name, x, {}, folder)


def _quantized(model: Any, ws: Any, x: Any, name: str, folder: str) -> dict[str, Any]:
    from compress import methods
    from compress.recipe.methods import LinearQuantize

    out = methods.apply(model, LinearQuantize(bits=8), ws)
    return _round_trip(model, name, x, dict(out.grids), folder)


def _int8(model: Any, ws: Any, x: Any) -> dict[str, Any]:
    import torch

    from compress import execution
    from compress.recipe.methods import LinearQuantize

    runner, plan, _ = execution.convert(model, LinearQuantize(bits=8, execute="int8", calibration_batches=1),
                                        ws.data, ws.run)
    with torch.no_grad():
        ref, got = model(x), runner(x)
    return {"runtime": plan["runtime"], "delta": float((got - ref).abs().max()),
            "range": float(ref.max() - ref.min())}


def _fresh(name: str) -> Any:
    """The model built anew (same seed, same weights) for each step, the last step's copy freed first: the
    process holds one model at a time, so its peak is one step's own (ViT-H/14 is 2.5 GB in fp32)."""
    import ctypes

    import torch

    gc.collect()
    try:  # give freed heap pages back to the system, so one step's garbage doesn't add to the next's peak
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    torch.manual_seed(0)
    return _build(name)


def _one(name: str, queue: mp.Queue) -> None:
    import torch

    torch.manual_seed(1)
    size = _input_size(name)
    x = torch.randn(2, 3, size, size)
    ws = _workspace(x)
    result: dict[str, Any] = {"model": name, "params": sum(p.numel() for p in _fresh(name).parameters()),
                              "input": size}
    with tempfile.TemporaryDirectory() as folder:
        _step(result, "channel", lambda: _channel(_fresh(name), ws, x))
        _step(result, "unstructured", lambda: _unstructured(_fresh(name), ws, x, name, folder))
        _step(result, "bits8", lambda: _quantized(_fresh(name), ws, x, name, folder))
        if name in INT8:
            _step(result, "int8", lambda: _int8(_fresh(name), ws, x))
    result["peak_gib"] = round(peak_gib(), 2)
    queue.put(result)


def run_model(name: str, timeout: float) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()
    proc = ctx.Process(target=_one, args=(name, queue))
    proc.start()
    proc.join(timeout)
    if proc.is_alive():
        proc.kill()
        return {"model": name, "error": f"no result in {timeout:.0f} s"}
    return queue.get() if not queue.empty() else {"model": name, "error": f"process died (exit {proc.exitcode})"}


def _size(name: str) -> int:
    import torch

    try:
        with torch.device("meta"):
            return sum(p.numel() for p in _build(name).parameters())
    except NotImplementedError:  # RegNet computes its widths with tensors: build it for real
        return sum(p.numel() for p in _build(name).parameters())


def main() -> None:
    import torchvision.models as tvm

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=None)
    parser.add_argument("--out", default="zoo.jsonl")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per model")
    args = parser.parse_args()
    names = args.models or sorted(tvm.list_models(module=tvm), key=_size)  # small first: most rows soonest
    done = set()
    out = Path(args.out)
    if out.exists():
        done = {json.loads(line)["model"] for line in out.read_text().splitlines() if line.strip()}
    for name in names:
        if name in done:
            continue
        result = run_model(name, args.timeout)
        with out.open("a") as fh:
            fh.write(json.dumps(result) + "\n")
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
