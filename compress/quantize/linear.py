"""Linear quantization: uniform affine grids (min-max or MSE-optimal clipping, per channel or tensor).

Grid fitting and projection in :mod:`compress.quantize.grids`; :func:`quantize_linear` is the method's handler.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from compress.analysis.sensitivity import Projection
from compress.artifact import LinearGrid
from compress.method import Outcome, Workspace
from compress.quantize.common import quantize_layers
from compress.quantize.grids import fit_grid, project
from compress.quantize.qat import STEHook
from compress.recipe.methods import LinearQuantize
from compress.training import TrainHook


def projection(cfg: LinearQuantize) -> Projection:
    """``(weights, bits) → weights`` on the grid this config fits (16 = fp16), for scans and searches."""
    def project_(w: torch.Tensor, bits: int) -> torch.Tensor:
        if bits == 16:
            return w.half().to(w.dtype)
        return project(w, fit_grid(w, bits, per_channel=cfg.granularity == "channel", symmetric=cfg.symmetric,
                                   method=cfg.range))

    return project_


def widths(cfg: LinearQuantize) -> list[int]:
    """Bit widths a scan considers: 8 down to 2 (symmetric grids need a zero and ±a) or 1."""
    return list(range(8, 1 if cfg.symmetric else 0, -1))


def quantize_linear(model: nn.Module, cfg: LinearQuantize, ws: Workspace) -> Outcome:
    """The handler of :class:`LinearQuantize`: weights rounded onto their grids, QAT by straight-through."""
    @torch.no_grad()
    def apply(params: dict[str, nn.Parameter], bits: dict[str, int]) -> tuple[dict, TrainHook]:
        grids: dict[str, LinearGrid] = {}
        for name, p in params.items():
            grids[name] = fit_grid(p, bits[name], per_channel=cfg.granularity == "channel",
                                   symmetric=cfg.symmetric, method=cfg.range)
            p.copy_(project(p, grids[name]))
        return grids, STEHook(params, lambda name, w: project(w, grids[name]))

    how = f"linear, {cfg.granularity}, {'symmetric' if cfg.symmetric else 'asymmetric'}, {cfg.range}"
    return quantize_layers(model, cfg, ws, projection(cfg), widths(cfg), apply, how)
