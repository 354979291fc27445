"""Activation observers beyond torch's min-max and histogram ones."""
from __future__ import annotations

import torch
from torch.ao.quantization.observer import MinMaxObserver

_MAX_SAMPLES = 1 << 20  # torch.quantile's input limit is 16M; a strided sample is plenty


class PercentileObserver(MinMaxObserver):
    """Range from the 0.01 % / 99.99 % percentiles of each batch (widest over batches): outliers clipped."""

    def __init__(self, percentile: float = 99.99, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.percentile = percentile

    def forward(self, x_orig: torch.Tensor) -> torch.Tensor:
        if x_orig.numel() == 0:
            return x_orig
        x = x_orig.detach().float().reshape(-1)
        x = x[:: max(1, x.numel() // _MAX_SAMPLES)]
        q = torch.tensor([1 - self.percentile / 100, self.percentile / 100], device=x.device)
        lo, hi = torch.quantile(x, q)
        self.min_val.copy_(torch.minimum(self.min_val, lo))
        self.max_val.copy_(torch.maximum(self.max_val, hi))
        return x_orig
