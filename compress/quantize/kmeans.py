"""Weight sharing (Deep Compression): a per-layer codebook of 2^bits values found by 1-D k-means.

Codebook fitting and the tied weights here; :func:`quantize_kmeans` is the method's handler.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from compress.method import Outcome, Workspace
from compress.quantize.common import quantize_layers
from compress.recipe.methods import KMeansQuantize
from compress.training import TrainHook

_ITERATIONS = 30
_CHUNK = 1 << 20  # values summed in float32 at once; past this, chunk sums add up in float64


def cluster_means(idx: torch.Tensor, values: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` per cluster ``idx`` (0 for an empty one), exact for clusters of any size.

    float32 stops counting at 2^24 and stops adding small values to large sums well before (a
    102.8 M-weight layer had its centroids near zero come out wrong), so large inputs are summed in
    chunks whose float32 sums are then added in float64; small ones keep the plain float32 sum.
    """
    if values.numel() <= _CHUNK:
        sums = torch.zeros(counts.shape, dtype=torch.float32, device=values.device).index_add_(0, idx, values)
        return sums / counts.clamp_min(1).to(torch.float32)
    total = torch.zeros(counts.shape, dtype=torch.float64, device=values.device)
    for start in range(0, values.numel(), _CHUNK):
        part = torch.zeros(counts.shape, dtype=torch.float32, device=values.device)
        total += part.index_add_(0, idx[start:start + _CHUNK], values[start:start + _CHUNK]).double()
    return (total / counts.clamp_min(1).double()).float()


def fit_codebook(values: torch.Tensor, bits: int, iterations: int = _ITERATIONS) -> torch.Tensor:
    """Sorted centroids for 1-D ``values``, initialised linearly over their range (Han et al.'s best init)."""
    v = values.detach().float().reshape(-1)
    k = min(2 ** bits, max(1, v.numel()))
    if v.numel() == 0:
        return torch.zeros(1)
    centroids = torch.linspace(float(v.min()), float(v.max()), k, device=v.device)
    for _ in range(iterations):
        idx = assign(v, centroids)
        counts = torch.bincount(idx, minlength=k)  # exact integers (a float32 count stops at 2^24)
        moved = torch.where(counts > 0, cluster_means(idx, v, counts), centroids)
        if torch.equal(moved, centroids):
            break
        centroids = moved.sort().values
    return centroids


def assign(values: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Index of the nearest centroid (``centroids`` sorted ascending)."""
    if centroids.numel() == 1:
        return torch.zeros(values.shape, dtype=torch.int64, device=values.device)
    mids = (centroids[1:] + centroids[:-1]) / 2
    return torch.bucketize(values, mids)


def _scatter(target: torch.Tensor, pos: torch.Tensor, values: torch.Tensor) -> None:
    """``target`` ← zeros with ``values`` at the row-major flat positions ``pos``, in place, whatever its
    memory layout (a channels-last weight has no flat view)."""
    if target.is_contiguous():
        flat = target.view(-1)
        flat.zero_()
        flat[pos] = values.to(flat.dtype)
        return
    flat = torch.zeros(target.numel(), dtype=target.dtype, device=target.device)
    flat[pos] = values.to(flat.dtype)
    target.copy_(flat.view(target.shape))


_HALF_MAX = 65504.0  # the largest float16: a codebook with larger values stays float32


class SharedWeights:
    """One layer's weights tied to a codebook. Pruned weights (0) stay 0 and cost nothing: all
    per-step work touches only the kept positions, which matters at 95 %+ sparsity.

    With ``half``, the weights take the centroids rounded to float16 (the file then stores the book in half
    the bytes) while the centroids themselves stay float32, so fine-tuning steps smaller than a float16
    step still add up."""

    def __init__(self, param: torch.nn.Parameter, bits: int, half: bool = False) -> None:
        flat = param.detach().reshape(-1)
        self.param = param
        self.pos = flat.nonzero().squeeze(1)  # kept (non-zero) positions, flat
        kept = flat[self.pos].float()
        self.centroids = fit_codebook(kept, bits)
        self.codes = assign(kept, self.centroids)  # centroid index per kept position
        self.counts = torch.bincount(self.codes, minlength=self.centroids.numel())  # exact integers
        self.half = half and param.dtype in (torch.float32, torch.float64)  # a 16-bit weight rounds itself

    def values(self) -> torch.Tensor:
        """The shared values the weights take: the centroids, rounded to float16 when ``half`` allows."""
        if self.half and bool((self.centroids.abs() < _HALF_MAX).all()):
            return self.centroids.half().float()
        return self.centroids

    def _cluster_means(self, values: torch.Tensor) -> torch.Tensor:
        return cluster_means(self.codes, values.float(), self.counts)

    @torch.no_grad()
    def tie(self) -> None:
        """Write every kept weight as its centroid, every pruned one as 0."""
        _scatter(self.param, self.pos, self.values()[self.codes])

    @torch.no_grad()
    def group_gradients(self) -> None:
        """Replace each weight's gradient by its cluster's mean gradient, so tied weights move together."""
        g = self.param.grad
        if g is None:
            return
        mean = self._cluster_means(g.reshape(-1)[self.pos])
        _scatter(g, self.pos, mean[self.codes])

    @torch.no_grad()
    def update_centroids(self) -> None:
        """Centroids ← mean of their cluster's updated weights (the optimizer's grouped step)."""
        means = self._cluster_means(self.param.detach().reshape(-1)[self.pos])
        tied = self.values()
        if tied is not self.centroids:  # the weights moved from the rounded values: move the exact ones alike
            means = self.centroids + (means - tied)
        self.centroids = torch.where(self.counts > 0, means, self.centroids)


class CodebookHook(TrainHook):
    """Weights stay tied to per-layer centroids; centroids learn from grouped gradients."""

    def __init__(self, layers: list[SharedWeights]) -> None:
        self.layers = layers

    def on_start(self, model: nn.Module) -> None:
        for layer in self.layers:
            layer.tie()

    def after_backward(self, model: nn.Module) -> None:
        for layer in self.layers:
            layer.group_gradients()

    def after_step(self, model: nn.Module, step: int, total: int) -> None:
        for layer in self.layers:
            layer.update_centroids()
            layer.tie()


def project(w: torch.Tensor, bits: int) -> torch.Tensor:
    """``w`` with its non-zeros replaced by their k-means centroid (16 = fp16), for scans and searches; the
    centroids are rounded to fp16 as the default ``centroid_bits`` rounds them (a change below 0.05 %)."""
    if bits == 16:
        return w.half().to(w.dtype)
    shared = SharedWeights(torch.nn.Parameter(w.detach().clone()), bits, half=True)
    shared.tie()
    return shared.param.detach()


def quantize_kmeans(model: nn.Module, cfg: KMeansQuantize, ws: Workspace) -> Outcome:
    """The handler of :class:`KMeansQuantize`: per-layer codebooks; fine-tuning moves the centroids."""
    def apply(params: dict[str, nn.Parameter], bits: dict[str, int]) -> tuple[dict, TrainHook]:
        layers = [SharedWeights(p, bits[n], half=cfg.centroid_bits == 16) for n, p in params.items()]
        for layer in layers:
            layer.tie()
        return {}, CodebookHook(layers)

    return quantize_layers(model, cfg, ws, project, list(range(8, 0, -1)), apply, "kmeans")
