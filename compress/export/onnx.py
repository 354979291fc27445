"""ONNX: the float model through ``torch.onnx`` (the torch.export-based exporter), int8 through ONNX Runtime.

int8 is ONNX Runtime's static QDQ quantization: weights per channel on the symmetric ±127 grid
(the grid of modelzip's 8-bit linear codes, so quantized weights stay exactly as they are),
activations calibrated on training batches. The activation scales are kept as a plan, so the same
int8 model is rebuilt later without calibration data (:func:`quantize` with ``fixed``).
"""
from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from compress.errors import UnsupportedError
from compress.export.errors import explain, inputs, quiet, silenced

INPUT, OUTPUT = "input", "logits"
_OBSERVERS = {"minmax": "MinMax", "histogram": "Entropy", "percentile": "Percentile"}
QParams = dict[str, list[float]]  # activation tensor → [scale, zero point]


def require() -> Any:
    """``onnxruntime`` (and ``onnx``), or a clear error saying how to get them."""
    try:
        import onnx  # noqa: F401
        import onnxruntime
    except ImportError as exc:
        raise UnsupportedError(f"ONNX export and int8 through ONNX Runtime need onnx and onnxruntime ({exc.name} "
                               "is missing)", "pip install 'modelzip[export]'") from None
    return onnxruntime


def to_onnx(model: nn.Module, example: torch.Tensor, batch: int | None, opset: int) -> bytes:
    """The float model as one self-contained ONNX file (``batch`` None: a dynamic batch dimension)."""
    require()
    model, x, shapes = inputs(model, example, batch)
    try:
        with silenced():
            program = torch.onnx.export(model, (x,), dynamo=True, input_names=[INPUT], output_names=[OUTPUT],
                                        dynamic_shapes=shapes, opset_version=opset, external_data=False,
                                        verbose=False)
    except Exception as exc:  # noqa: BLE001 - the exporter raises many kinds; all mean "this model does not export"
        raise UnsupportedError(f"ONNX export failed: {explain(exc)}",
                               "the failing code is named above: rewrite or replace it (data-dependent control flow and custom ops "
                               "do not export), or try "
                               "--format pt2") from None
    with tempfile.TemporaryDirectory(prefix="modelzip-onnx-") as tmp:
        path = Path(tmp) / "model.onnx"
        program.save(str(path), external_data=False)
        _check(path)
        return path.read_bytes()


def _check(path: Path) -> None:
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise UnsupportedError(f"the exported ONNX model does not pass onnx.checker: {explain(exc)}") from None


class _Batches:
    """ONNX Runtime's calibration reader over a list of input batches."""

    def __init__(self, batches: list[np.ndarray]) -> None:
        self.batches = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        x = next(self.batches, None)
        return None if x is None else {INPUT: x}


def quantize(float_onnx: bytes, batches: list[torch.Tensor], observer: str,
             fixed: QParams | None = None) -> tuple[bytes, QParams]:
    """Static QDQ int8 of ``float_onnx``: calibrated on ``batches``, or with the ``fixed`` activation scales.

    Returns the int8 model and its activation scales (the plan that rebuilds it exactly).
    """
    require()
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    extra: dict[str, Any] = {"WeightSymmetric": True, "QDQDisableWeightAdjustForInt32Bias": True}
    if observer == "percentile":
        extra["CalibPercentile"] = 99.99
    if fixed is not None:
        extra["TensorQuantOverrides"] = {name: [{"scale": np.array(s, dtype=np.float32),
                                                 "zero_point": np.array(int(z), dtype=np.uint8)}]
                                         for name, (s, z) in fixed.items()}
    with tempfile.TemporaryDirectory(prefix="modelzip-int8-") as tmp:
        raw, src, dst = Path(tmp) / "float.onnx", Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        raw.write_bytes(float_onnx)
        reader = _Batches([b.cpu().numpy().astype(np.float32) for b in batches])
        cwd = os.getcwd()
        try:
            os.chdir(tmp)  # the calibrator writes its augmented model into the working folder
            with warnings.catch_warnings(), quiet():
                warnings.simplefilter("ignore")
                quant_pre_process(str(raw), str(src))  # shape inference and fusions quantization relies on
                quantize_static(str(src), str(dst), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                                weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                                calibrate_method=getattr(CalibrationMethod, _OBSERVERS[observer]),
                                extra_options=extra)
        except Exception as exc:  # noqa: BLE001
            raise UnsupportedError(f"ONNX Runtime could not quantize the model: {explain(exc)}",
                                   "export it as float (without --int8)") from None
        finally:
            os.chdir(cwd)
        data = dst.read_bytes()
    return data, activation_qparams(data)


def activation_qparams(int8_onnx: bytes) -> QParams:
    """Scale and zero point of every quantized activation (graph inputs, outputs and inner tensors)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load_from_string(int8_onnx).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    out: QParams = {}
    for node in graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] not in inits:
            name = node.input[0].removesuffix("_QuantizeLinear_Input")  # a quantized graph output's original name
            out[name] = [float(inits[node.input[1]]), int(inits[node.input[2]])]
    return out


class OrtModule(nn.Module):
    """An ONNX model run by ONNX Runtime behind the ``nn.Module`` call interface (CPU tensors in and out)."""

    def __init__(self, onnx_bytes: bytes, threads: int | None = None) -> None:
        super().__init__()
        ort = require()
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        self.onnx_bytes = onnx_bytes
        self.session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run([OUTPUT], {INPUT: x.detach().cpu().float().numpy()})[0]
        return torch.from_numpy(out)
