"""Weight sharing (Deep Compression): a per-layer codebook of 2^bits values found by 1-D k-means."""
from __future__ import annotations

import torch

_ITERATIONS = 30


def fit_codebook(values: torch.Tensor, bits: int, iterations: int = _ITERATIONS) -> torch.Tensor:
    """Sorted centroids for 1-D ``values``, initialised linearly over their range (Han et al.'s best init)."""
    v = values.detach().float().reshape(-1)
    k = min(2 ** bits, max(1, v.numel()))
    if v.numel() == 0:
        return torch.zeros(1)
    centroids = torch.linspace(float(v.min()), float(v.max()), k, device=v.device)
    for _ in range(iterations):
        idx = assign(v, centroids)
        sums = torch.zeros_like(centroids).index_add_(0, idx, v)
        counts = torch.zeros_like(centroids).index_add_(0, idx, torch.ones_like(v))
        moved = torch.where(counts > 0, sums / counts.clamp_min(1), centroids)
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


class SharedWeights:
    """One layer's weights tied to a codebook: ``idx`` per weight (−1 = pruned, stays 0)."""

    def __init__(self, param: torch.nn.Parameter, bits: int) -> None:
        w = param.detach()
        keep = w != 0
        self.param = param
        self.centroids = fit_codebook(w[keep], bits)
        self.idx = torch.full(w.shape, -1, dtype=torch.int64, device=w.device)
        self.idx[keep] = assign(w[keep].float(), self.centroids)
        self.mask = keep

    @torch.no_grad()
    def tie(self) -> None:
        """Write every weight as its centroid (pruned ones as 0)."""
        values = self.centroids[self.idx.clamp_min(0)].to(self.param.dtype)
        self.param.copy_(torch.where(self.mask, values, torch.zeros_like(values)))

    @torch.no_grad()
    def group_gradients(self) -> None:
        """Replace each weight's gradient by its cluster's mean gradient, so tied weights move together."""
        g = self.param.grad
        if g is None:
            return
        sel = self.idx[self.mask]
        sums = torch.zeros_like(self.centroids).index_add_(0, sel, g[self.mask].float())
        counts = torch.zeros_like(self.centroids).index_add_(0, sel, torch.ones_like(sel, dtype=torch.float32))
        mean = sums / counts.clamp_min(1)
        g.copy_(torch.where(self.mask, mean[self.idx.clamp_min(0)].to(g.dtype), torch.zeros_like(g)))

    @torch.no_grad()
    def update_centroids(self) -> None:
        """Centroids ← mean of their cluster's updated weights (the optimizer's grouped step)."""
        w = self.param.detach().float()
        sel = self.idx[self.mask]
        sums = torch.zeros_like(self.centroids).index_add_(0, sel, w[self.mask])
        counts = torch.zeros_like(self.centroids).index_add_(0, sel, torch.ones_like(sel, dtype=torch.float32))
        self.centroids = torch.where(counts > 0, sums / counts.clamp_min(1), self.centroids)
