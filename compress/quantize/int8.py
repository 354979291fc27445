"""Opt-in int8 execution on CPU: a float model becomes one that runs integer kernels.

Conv nets get static int8 (FX graph mode, activations calibrated by an observer); nets without
convolutions get dynamic int8 Linear layers. ``torch.ao.quantization`` is deprecated but is
what runs int8 kernels here (torchao's PT2E X86 path failed on ResNets with this torch): it is
imported lazily, so everything else works without it. The calibrated activation parameters
are kept in a plan (plain JSON), so an artifact rebuilds the identical int8 model.
"""
from __future__ import annotations

import copy
import warnings
from typing import Any

import torch
import torch.nn as nn

from compress.context import RunContext
from compress.data import Dataset, iter_batches
from compress.errors import UnsupportedError
from compress.recipe.methods import QuantizeBase

_ENGINES = ("x86", "fbgemm", "onednn", "qnnpack")  # preference order
Plan = dict[str, Any]


def engines() -> list[str]:
    """Quantized engines this torch build has."""
    return [e for e in torch.backends.quantized.supported_engines if e != "none"]


def pick_engine(device: torch.device) -> str:
    """The best quantized engine here; a clear error when int8 kernels cannot run."""
    available = engines()
    if device.type != "cpu":
        raise UnsupportedError(f"--execute int8 runs CPU int8 kernels, but the run's device is '{device}'",
                               "run with --device cpu, or keep execute: float (decode to float, runs anywhere)")
    engine = next((e for e in _ENGINES if e in available), None)
    if engine is None:
        raise UnsupportedError(f"this torch build has no int8 engine (engines: {', '.join(available) or 'none'})",
                               "keep execute: float")
    return engine


def convert(model: nn.Module, cfg: QuantizeBase, data: Dataset, ctx: RunContext) -> tuple[nn.Module, Plan]:
    """An int8 copy of ``model`` (static with calibration on ``data.train``, or dynamic) and its plan."""
    engine = pick_engine(ctx.device)
    has_conv = any(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules())
    plan: Plan = {"kind": "int8", "engine": engine, "mode": "static" if has_conv else "dynamic",
                  "input_shape": list(data.input_shape)}
    if not has_conv:
        return rebuild(model, plan), plan
    prepared = _prepare(model, engine, cfg.observer, plan["input_shape"])
    with torch.no_grad():
        for i, (x, _) in enumerate(iter_batches(data.train, 128, shuffle=True, generator=ctx.generator(offset=5))):
            if i >= cfg.calibration_batches:
                break
            prepared(x)
    plan["observer"] = cfg.observer
    plan["activations"] = {name: _qparams(obs) for name, obs in _observers(prepared).items()}
    return rebuild(model, plan), plan


def rebuild(model: nn.Module, plan: Plan) -> nn.Module:
    """The int8 model described by ``plan`` (bit-identical to the one :func:`convert` returned)."""
    engine = plan["engine"]
    if engine not in engines():
        raise UnsupportedError(f"the artifact runs int8 on engine '{engine}', which this torch lacks "
                               f"(engines: {', '.join(engines()) or 'none'})",
                               "load it as float: compress.load(path, execute=False)")
    torch.backends.quantized.engine = engine
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the deprecation notice of torch.ao.quantization
        if plan["mode"] == "dynamic":
            from torch.ao.quantization import quantize_dynamic

            return quantize_dynamic(copy.deepcopy(model).cpu().eval(), {nn.Linear}, dtype=torch.qint8)
        from torch.ao.quantization.observer import FixedQParamsObserver
        from torch.ao.quantization.quantize_fx import convert_fx

        prepared = _prepare(model, engine, "minmax", plan["input_shape"])
        for name, (scale, zero, dtype, qmin, qmax) in plan["activations"].items():
            setattr(prepared, name, FixedQParamsObserver(scale=scale, zero_point=zero, dtype=getattr(torch, dtype),
                                                         quant_min=qmin, quant_max=qmax))
        return convert_fx(prepared).eval()


def _prepare(model: nn.Module, engine: str, observer: str, input_shape: list[int]) -> nn.Module:
    from torch.ao.quantization import QConfig, QConfigMapping
    from torch.ao.quantization.observer import HistogramObserver, MinMaxObserver, PerChannelMinMaxObserver
    from torch.ao.quantization.quantize_fx import prepare_fx

    from compress.quantize.observers import PercentileObserver

    act = {"minmax": MinMaxObserver, "histogram": HistogramObserver, "percentile": PercentileObserver}[observer]
    reduce_range = engine in ("x86", "fbgemm")  # 7-bit activations: no overflow on CPUs without VNNI
    # Weights: symmetric per-channel with range ±127, the same grid as modelzip's 8-bit linear codes.
    qconfig = QConfig(activation=act.with_args(dtype=torch.quint8, reduce_range=reduce_range),
                      weight=PerChannelMinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_channel_symmetric,
                                                                quant_min=-127, quant_max=127))
    float_model = copy.deepcopy(model).cpu().eval()
    example = torch.zeros(1, *input_shape)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return prepare_fx(float_model, QConfigMapping().set_global(qconfig), (example,))
    except Exception as exc:  # symbolic tracing fails on data-dependent control flow
        raise UnsupportedError(f"int8 execution could not trace the model: {type(exc).__name__}: {exc}",
                               "keep execute: float (weights are still stored as integer codes)") from exc


def _observers(prepared: nn.Module) -> dict[str, Any]:
    from torch.ao.quantization.observer import ObserverBase

    return {n: m for n, m in prepared.named_children() if isinstance(m, ObserverBase)}


def _qparams(obs: Any) -> tuple[float, int, str, int, int]:
    scale, zero = obs.calculate_qparams()
    return float(scale), int(zero), str(obs.dtype).removeprefix("torch."), int(obs.quant_min), int(obs.quant_max)
