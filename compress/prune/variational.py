"""Sparse variational dropout (Molchanov, Ashukha & Vetrov, ICML 2017): training that learns which weights to drop.

Each weight w of a Linear/Conv layer gets its own Gaussian multiplicative noise, w·(1 + √α·ε), with α
learned per weight. Training minimises the cross-entropy plus the KL divergence from the log-uniform prior,
which pushes α up wherever a weight does not pay for its precision; weights with log α above a threshold
(3: signal-to-noise below e^-1.5) carry no information and are pruned. Where magnitude pruning removes a
rate fixed in advance on a schedule, the rate here follows from the data (LeNet-300-100: 1/68 of the
weights left, LeNet-5: 1/280 in the paper; "The State of Sparsity", Gale et al. 2019, compares it with
magnitude pruning and L0 gates).

Implementation: the local reparameterisation trick (noise on each output, from the mean and variance of
the pre-activation), added by a forward hook to the layer's own output, so the model keeps its modules;
log σ² is a parameter registered on each layer for the stage and removed after; the KL term (the paper's
sigmoid approximation, scaled by 1/N of the ELBO and ramped up from 0) is the hook's training penalty.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from compress.layers import module_of
from compress.training import TrainHook

_K1, _K2, _K3 = 0.63576, 1.87320, 1.48695  # the paper's fit of −KL(log α)
_LOG_SIGMA2 = "svd_log_sigma2"  # the parameter each layer carries during the stage
_NOISY = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def log_alpha(weight: torch.Tensor, log_sigma2: torch.Tensor) -> torch.Tensor:
    """log α = log σ² − log w², clamped to the paper's [−10, 10]."""
    return (log_sigma2 - torch.log(weight * weight + 1e-16)).clamp(-10.0, 10.0)


def neg_kl(la: torch.Tensor) -> torch.Tensor:
    """−KL(q(w | θ, α) ‖ log-uniform prior), summed over the weights (Molchanov et al., eq. 14)."""
    return (_K1 * torch.sigmoid(_K2 + _K3 * la) - 0.5 * F.softplus(-la) - _K1).sum()


class VariationalHook(TrainHook):
    """Adds per-weight multiplicative noise to the layers in ``params`` while it is attached, and the KL
    penalty (``kl_weight`` / ``n_train`` at full strength, reached after ``ramp`` of the steps) to the loss."""

    def __init__(self, model: nn.Module, params: dict[str, nn.Parameter], n_train: int, kl_weight: float,
                 ramp: float, seed: int) -> None:
        modules = dict(model.named_modules())
        self.layers = {n: modules[module_of(n)] for n in params if isinstance(modules[module_of(n)], _NOISY)}
        self.scale, self.ramp, self.strength = kl_weight / max(n_train, 1), ramp, 0.0
        self.seed = seed
        self.generators: dict[torch.device, torch.Generator] = {}  # the noise's, one per device, seeded by the run
        self.handles: list[torch.utils.hooks.RemovableHandle] = []

    def attach(self) -> None:
        """Give each layer its log σ² (starting at −10: almost no noise) and its noise."""
        for layer in self.layers.values():
            layer.register_parameter(_LOG_SIGMA2, nn.Parameter(torch.full_like(layer.weight, -10.0)))
            self.handles.append(layer.register_forward_hook(self._add_noise))

    def detach(self) -> dict[str, torch.Tensor]:
        """Remove the noise and the log σ² parameters; each layer's final log α."""
        out = {}
        for name, layer in self.layers.items():
            with torch.no_grad():
                out[name] = log_alpha(layer.weight, getattr(layer, _LOG_SIGMA2))
            delattr(layer, _LOG_SIGMA2)
        for handle in self.handles:
            handle.remove()
        self.handles.clear()
        return out

    def _add_noise(self, layer: nn.Module, args: tuple[torch.Tensor, ...], mean: torch.Tensor) -> torch.Tensor:
        """Local reparameterisation: the output's mean is the layer's own output, its variance the layer
        applied to x² with σ² as weights; one Gaussian sample per output (training only)."""
        if not layer.training:
            return mean
        x, sigma2 = args[0], getattr(layer, _LOG_SIGMA2).exp()
        if isinstance(layer, nn.Linear):
            var = F.linear(x * x, sigma2)
        else:
            var = layer._conv_forward(x * x, sigma2, None)  # type: ignore[operator]
        gen = self.generators.get(mean.device)
        if gen is None:
            gen = self.generators[mean.device] = torch.Generator(mean.device).manual_seed(self.seed)
        noise = torch.randn(mean.shape, generator=gen, device=mean.device, dtype=mean.dtype)
        return mean + noise * (var + 1e-8).sqrt()

    def penalty(self, model: nn.Module) -> torch.Tensor | None:
        if self.strength == 0.0:
            return None
        kl = sum(-neg_kl(log_alpha(m.weight, getattr(m, _LOG_SIGMA2))) for m in self.layers.values())
        return self.strength * self.scale * kl

    def after_step(self, model: nn.Module, step: int, total: int) -> None:
        self.strength = min(1.0, step / max(1.0, math.floor(self.ramp * total)))


