"""Quantization-aware fine-tuning for grids: the straight-through-estimator hook.

The forward pass and the gradient see the quantized weights, the optimizer updates latent
float weights, and training ends with the weights projected onto their grid. (Codebook
methods keep weights tied to shared centroids: ``kmeans.CodebookHook``.)
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn

from compress.training import TrainHook

Projection = Callable[[str, torch.Tensor], torch.Tensor]


class STEHook(TrainHook):
    """Forward with projected weights, step on latent ones (BinaryConnect-style swap)."""

    def __init__(self, params: dict[str, nn.Parameter], project: Projection) -> None:
        self.params, self.project = params, project
        self.latent: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def _quantize(self) -> None:
        for name, p in self.params.items():
            self.latent[name] = p.detach().clone()
            p.copy_(self.project(name, p))

    def on_start(self, model: nn.Module) -> None:
        self._quantize()

    @torch.no_grad()
    def after_backward(self, model: nn.Module) -> None:
        for name, p in self.params.items():  # gradients came from quantized weights; apply them to latent ones
            p.copy_(self.latent[name])

    def after_step(self, model: nn.Module, step: int, total: int) -> None:
        self._quantize()

    def on_end(self, model: nn.Module) -> None:
        self.latent.clear()  # the last step left the projected weights in place
