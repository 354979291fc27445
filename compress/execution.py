"""int8 execution on the CPU: ONNX Runtime first (maintained), ``torch.ao`` FX only as the fallback.

``convert`` turns the final float model into an int8 runner and a plan (plain JSON stored in the
artifact); ``rebuild`` makes the identical runner from the float model and the plan. ONNX Runtime
gets static QDQ int8 with per-channel ±127 weights (modelzip's 8-bit grid); ``torch.ao``'s FX mode
is deprecated upstream and runs only where onnxruntime is not installed (or for older artifacts).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from compress.context import RunContext
from compress.data import Dataset
from compress.errors import UnsupportedError
from compress.export import calibration_batches
from compress.export import onnx as onnx_export
from compress.quantize import int8 as torch_ao
from compress.recipe.methods import QuantizeBase

Plan = dict[str, Any]
_OPSET = 18


def ort_available() -> bool:
    try:
        onnx_export.require()
    except UnsupportedError:
        return False
    return True


def convert(model: nn.Module, cfg: QuantizeBase, data: Dataset, ctx: RunContext) -> tuple[nn.Module, Plan, str]:
    """An int8 runner for ``model``, its plan, and a note saying which runtime runs it."""
    if not ort_available():
        runner, plan = torch_ao.convert(model, cfg, data, ctx)
        plan["runtime"] = "torch.ao"
        return runner, plan, ("int8 execution: torch.ao FX (deprecated upstream; pip install 'modelzip[export]' "
                              "for ONNX Runtime)")
    example = data.test.head(1).x
    float_onnx = onnx_export.to_onnx(model, example, None, _OPSET)
    int8_onnx, qparams = onnx_export.quantize(float_onnx, calibration_batches(data.train, cfg.calibration_batches,
                                                                              ctx), cfg.observer)
    version = onnx_export.require().__version__
    plan: Plan = {"kind": "int8", "runtime": "onnxruntime", "opset": _OPSET, "observer": cfg.observer,
                  "input_shape": list(data.input_shape), "activations": qparams}
    note = (f"int8 execution: onnxruntime {version} (static QDQ, per-channel ±127 weights, {cfg.observer} "
            "activation ranges)")
    return onnx_export.OrtModule(int8_onnx), plan, note


def rebuild(model: nn.Module, plan: Plan) -> nn.Module:
    """The runner ``plan`` describes, identical to the one :func:`convert` returned."""
    if plan.get("runtime", "torch.ao") == "torch.ao":  # artifacts before ONNX Runtime was the default say nothing
        return torch_ao.rebuild(model, plan)
    if not ort_available():
        raise UnsupportedError("this artifact runs int8 through ONNX Runtime, which is not installed",
                               "pip install 'modelzip[export]', or load it as float: compress.load(path, "
                               "execute=False)")
    example = torch.zeros(1, *plan["input_shape"])
    float_onnx = onnx_export.to_onnx(model, example, None, int(plan.get("opset", _OPSET)))
    fixed = {name: [float(s), int(z)] for name, (s, z) in plan["activations"].items()}
    int8_onnx, _ = onnx_export.quantize(float_onnx, [example], "minmax", fixed=fixed)  # every range is fixed
    return onnx_export.OrtModule(int8_onnx)
