"""Uniform affine grids: fitting one to a tensor (min-max or MSE-optimal clipping, per channel or per tensor)
and rounding onto it. Shared by linear quantization (weights) and every method's bias option."""
from __future__ import annotations

import torch

from compress.artifact import LinearGrid

_CLIP_RATIOS = torch.linspace(1.0, 0.3, 36)  # candidate clipping ratios for the MSE search


def _reduce_dims(w: torch.Tensor, per_channel: bool) -> tuple[int, ...]:
    return tuple(range(1, w.dim())) if per_channel and w.dim() > 1 else tuple(range(w.dim()))


def _grid_for(lo: torch.Tensor, hi: torch.Tensor, bits: int, symmetric: bool, axis: int | None) -> LinearGrid:
    """Grid covering [lo, hi] (per channel) with 0 exactly representable."""
    lo, hi = torch.minimum(lo, torch.zeros_like(lo)), torch.maximum(hi, torch.zeros_like(hi))
    if symmetric:
        qmax = 2 ** (bits - 1) - 1  # restricted range: −qmax..qmax around zero point 2^(bits−1)
        scale = torch.maximum(-lo, hi) / qmax
        zero = torch.full_like(scale, 2 ** (bits - 1), dtype=torch.int32)
    else:
        scale = (hi - lo) / (2 ** bits - 1)
        zero = torch.round(-lo / torch.where(scale > 0, scale, torch.ones_like(scale))).to(torch.int32)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale)).float()
    zero = zero.clamp(0, 2 ** bits - 1)
    return LinearGrid(bits, scale.reshape(-1) if axis is not None else scale.reshape(()),
                      zero.reshape(-1) if axis is not None else zero.reshape(()), axis)


def fit_grid(w: torch.Tensor, bits: int, *, per_channel: bool = True, symmetric: bool = True,
             method: str = "minmax") -> LinearGrid:
    """A ``bits``-bit grid for ``w``: min-max range, or the clipped range with the least squared error."""
    w = w.detach().float().cpu()
    dims = _reduce_dims(w, per_channel)
    axis = 0 if per_channel and w.dim() > 1 else None
    lo, hi = w.amin(dim=dims), w.amax(dim=dims)
    best = _grid_for(lo, hi, bits, symmetric, axis)
    if method == "minmax":
        return best
    best_err = _error(w, best, dims)
    for ratio in _CLIP_RATIOS[1:]:
        grid = _grid_for(lo * ratio, hi * ratio, bits, symmetric, axis)
        err = _error(w, grid, dims)
        better = err < best_err
        if axis is None:
            best, best_err = (grid, err) if bool(better) else (best, best_err)
            continue
        best = LinearGrid(bits, torch.where(better, grid.scale, best.scale),
                          torch.where(better, grid.zero_point, best.zero_point), axis)
        best_err = torch.minimum(err, best_err)
    return best


def _error(w: torch.Tensor, grid: LinearGrid, dims: tuple[int, ...]) -> torch.Tensor:
    return (grid.dequantize(grid.quantize(w)) - w).pow(2).sum(dim=dims)


def project(w: torch.Tensor, grid: LinearGrid) -> torch.Tensor:
    """``w`` rounded onto ``grid`` (same dtype and device)."""
    g = LinearGrid(grid.bits, grid.scale.to(w.device), grid.zero_point.to(w.device), grid.axis)
    return g.dequantize(g.quantize(w)).to(w.dtype)
