"""Top-1 accuracy, loss and latency of a model."""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from compress.data import Samples, StreamSplit, iter_batches
from compress.distributed import Dist
from compress.progress import Progress


@dataclass(frozen=True)
class EvalResult:
    accuracy: float  # top-1, percent
    loss: float
    samples: int
    correct: int


@torch.inference_mode()
def evaluate(model: nn.Module, split: Samples, batch_size: int, device: torch.device,
             dist: Dist | None = None, progress: Progress | None = None) -> EvalResult:
    """Top-1 accuracy (%) and mean cross-entropy of ``model`` on ``split`` (in a job: each rank a shard,
    the counts summed, so every rank gets the same figures). ``progress`` hears of streamed evaluations
    (the ones long enough to need it)."""
    model.eval()
    if dist is not None:
        split = split.part(dist.rank, dist.world)
    shown = progress if isinstance(split, StreamSplit) else None
    if shown is not None:
        shown.start("evaluate", math.ceil(len(split) / batch_size))
    loss_sum, correct, seen, start = 0.0, 0, 0, time.perf_counter()
    try:
        for x, y in iter_batches(split, batch_size):
            logits = model(x.to(device)).float()
            y = y.to(device)
            loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
            if shown is not None:
                shown.update(1, acc=100.0 * correct / seen, samples_per_s=seen / (time.perf_counter() - start))
    finally:
        if shown is not None:
            shown.stop()
    n = len(split)
    if dist is not None:
        loss_sum, correct_sum, n_sum = dist.sum(loss_sum, correct, n)
        correct, n = int(correct_sum), int(n_sum)
    return EvalResult(100.0 * correct / n, loss_sum / n, n, correct)


@torch.inference_mode()
def measure_latency(model: nn.Module, example: torch.Tensor, batch_size: int, device: torch.device,
                    repeats: int = 10, warmup: int = 2) -> float:
    """Median seconds for one forward pass over a batch of ``batch_size`` inputs like ``example``."""
    model.eval()
    reps = -(-batch_size // len(example))
    x = example.repeat(reps, *([1] * (example.dim() - 1)))[:batch_size].to(device)
    times = []
    for i in range(warmup + repeats):
        _sync(device)
        start = time.perf_counter()
        model(x)
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
