"""Helpers shared by the benchmark scripts (run them as ``python benchmarks/<name>.py``)."""
from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import torch

import compress
from compress.evaluate import measure_latency


def mnist_recipe(model: str, root: str, out: Path, pipeline: list[Any], checkpoint: Path | None = None,
                 max_drop: float | None = None, val_fraction: float = 0.0) -> Any:
    """A CPU recipe on real MNIST under ``root``, optionally starting from ``checkpoint``, with a budget
    (and ``val_fraction`` of the training images held out as the validation split)."""
    return compress.load_recipe({"model": {"name": model, "checkpoint": str(checkpoint) if checkpoint else None},
                                 "data": {"name": "mnist", "root": root, "val_fraction": val_fraction},
                                 "pipeline": pipeline,
                                 "device": "cpu", "seed": 0, "output": str(out),
                                 "constraints": {"max_accuracy_drop": max_drop}})


def paired_latency(a: torch.nn.Module, b: torch.nn.Module, x: torch.Tensor, rounds: int = 7) -> tuple[float, float]:
    """Median latency of ``a`` and ``b`` on ``x``, measured alternately so load drifts hit both."""
    ta, tb = [], []
    for _ in range(rounds):
        ta.append(measure_latency(a, x, len(x), torch.device("cpu"), repeats=5))
        tb.append(measure_latency(b, x, len(x), torch.device("cpu"), repeats=5))
    return statistics.median(ta), statistics.median(tb)
