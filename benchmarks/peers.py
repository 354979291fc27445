"""Peers side by side on the same trained nets: what each installed compression tool does with its own
documented API and its own saving method, against modelzip on the same weights.

Per net (LeNet-300-100, LeNet-5, mnist-cnn; trained once here by modelzip on real MNIST with a 10 %
validation split held out): top-1 on the MNIST test set, the bytes of the file each tool writes, the
ratio to the fp32 ``torch.save(state_dict)`` and the wall time of compressing + saving.

- ``torch.nn.utils.prune``: ``global_unstructured`` L1 at 90 %, ``prune.remove``, ``torch.save(state_dict)``;
- torchao: ``quantize_(model, Int8WeightOnlyConfig())``, ``torch.save(state_dict)`` (its documented round trip);
- NNCF: post-training int8 (``nncf.quantize`` on the ``torch.export`` graph, 300 calibration images), saved as
  its docs say for deployment: OpenVINO IR (``ov.convert_model`` + ``ov.save_model``: .xml + .bin), run with
  OpenVINO for its accuracy;
- modelzip, the same operations (no fine-tuning): global magnitude 90 % and 8-bit linear weights, ``compress.save``.
  modelzip's full recipes (training included) are measured by ``deep_compression.py`` / ``beyond.py``.

Peers are the ``bench`` extra: ``pip install -e ".[bench]"``; a missing one is a row saying so.

    python benchmarks/peers.py --root ../shared/datasets [--nets lenet-300-100 lenet-5 mnist-cnn]
"""
from __future__ import annotations

import argparse
import copy
import io
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

import compress
from compress.artifact import ModelSpec
from compress.context import RunContext
from compress.data import Dataset
from compress.evaluate import evaluate
from compress.method import Workspace
from compress.methods import apply
from compress.recipe import LinearQuantize, UnstructuredPrune

CPU = torch.device("cpu")
TRAIN = {"lenet-300-100": 10, "lenet-5": 10, "mnist-cnn": 3}  # baseline epochs (as the Deep Compression recipes)


def _baseline(net: str, root: str, folder: Path) -> tuple[nn.Module, Dataset, float]:
    """``net`` trained by modelzip on MNIST (10 % validation held out); its test top-1."""
    recipe = compress.load_recipe({
        "model": {"name": net}, "data": {"name": "mnist", "root": root, "val_fraction": 0.1},
        "pipeline": [{"train": {"epochs": TRAIN[net], "batch_size": 128, "optimizer": "adamw", "lr": 0.002,
                                "weight_decay": 0.0001}}],
        "device": "cpu", "seed": 0, "output": str(folder / net)})
    result = compress.run(recipe)
    from compress.data import load_dataset

    data = load_dataset(recipe.data)
    return result.model.eval(), data, evaluate(result.model, data.test, 1000, CPU).accuracy


def _fp32_bytes(model: nn.Module) -> int:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell()


def _torch_prune(model: nn.Module, data: Dataset, folder: Path, net: str) -> tuple[Callable, int]:
    import torch.nn.utils.prune as prune

    layers = [(m, "weight") for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d)]
    prune.global_unstructured(layers, pruning_method=prune.L1Unstructured, amount=0.9)
    for m, name in layers:
        prune.remove(m, name)
    path = folder / "torch_prune.pt"
    torch.save(model.state_dict(), path)
    return model, path.stat().st_size


def _torchao(model: nn.Module, data: Dataset, folder: Path, net: str) -> tuple[Callable, int]:
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    quantize_(model, Int8WeightOnlyConfig())
    path = folder / "torchao.pt"
    torch.save(model.state_dict(), path)
    return model, path.stat().st_size


def _nncf(model: nn.Module, data: Dataset, folder: Path, net: str) -> tuple[Callable, int]:
    import nncf
    import openvino as ov

    x = data.train.x[:300]
    batch = torch.export.Dim("batch", min=1, max=1024)
    graph = torch.export.export(model, (x[:2],), dynamic_shapes=({0: batch},)).module()
    quantized = nncf.quantize(graph, nncf.Dataset([x[i:i + 1] for i in range(len(x))]), subset_size=300)
    program = torch.export.export(quantized, (x[:2],), dynamic_shapes=({0: batch},))
    ov.save_model(ov.convert_model(program), folder / "nncf.xml")
    compiled = ov.Core().compile_model(folder / "nncf.xml", "CPU")

    def run(inputs: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(compiled(inputs.numpy())[0])
    return run, (folder / "nncf.xml").stat().st_size + (folder / "nncf.bin").stat().st_size


def _modelzip(config: Any) -> Callable[[nn.Module, Dataset, Path, str], tuple[Callable, int]]:
    def go(model: nn.Module, data: Dataset, folder: Path, net: str) -> tuple[Callable, int]:
        out = apply(model, config, Workspace(data, RunContext(CPU, 0), 1000))
        path = folder / "modelzip.mzip"
        size = compress.save(model, path, ModelSpec(net, {}), grids=dict(out.grids))
        return compress.load(path).eval(), size
    return go


PEERS: dict[str, tuple[str, Callable]] = {
    "torch.nn.utils.prune": ("global L1 90 %, torch.save", _torch_prune),
    "torchao": ("int8 weight-only, torch.save", _torchao),
    "NNCF": ("PTQ int8, OpenVINO IR", _nncf),
    "modelzip (prune)": ("global magnitude 90 %, compress.save", _modelzip(UnstructuredPrune(rate=90))),
    "modelzip (quantize)": ("8-bit linear weights, compress.save", _modelzip(LinearQuantize(bits=8))),
}


def _accuracy(run: Callable, data: Dataset) -> float:
    if isinstance(run, nn.Module):
        return evaluate(run, data.test, 1000, CPU).accuracy
    correct = 0
    with torch.no_grad():
        for i in range(0, len(data.test.y), 1000):
            correct += int((run(data.test.x[i:i + 1000]).argmax(1) == data.test.y[i:i + 1000]).sum())
    return 100.0 * correct / len(data.test.y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="../shared/datasets")
    parser.add_argument("--nets", nargs="*", default=list(TRAIN))
    args = parser.parse_args()
    print("| net | tool | what | top-1 % | file bytes | ratio | seconds |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        for net in args.nets:
            model, data, base = _baseline(net, args.root, Path(tmp))
            fp32 = _fp32_bytes(model)
            print(f"| {net} | (baseline) | fp32 torch.save(state_dict) | {base:.2f} | {fp32:,} | 1.0× | |", flush=True)
            for tool, (what, fn) in PEERS.items():
                folder = Path(tmp) / net / tool.replace(" ", "_")
                folder.mkdir(parents=True)
                start = time.perf_counter()
                try:
                    run, size = fn(copy.deepcopy(model), data, folder, net)
                except ImportError as exc:
                    print(f"| {net} | {tool} | {what} | not installed ({exc.name}: the bench extra) | | | |")
                    continue
                except Exception as exc:  # noqa: BLE001 - a peer's failure is a row, not the end of the table
                    print(f"| {net} | {tool} | {what} | failed: {type(exc).__name__}: {str(exc)[:120]} | | | |")
                    continue
                seconds = time.perf_counter() - start
                print(f"| {net} | {tool} | {what} | {_accuracy(run, data):.2f} | {size:,} | {fp32 / size:.1f}× | "
                      f"{seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
