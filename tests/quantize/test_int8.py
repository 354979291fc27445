"""int8 execution: integer kernels, accuracy kept, the identical model rebuilt from the artifact."""
from dataclasses import replace

import pytest
import torch

import compress
from compress.context import RunContext
from compress.data import Dataset, Split
from compress.errors import UnsupportedError
from compress.models import build_model
from compress.pipeline import _slower_note
from compress.quantize import int8
from compress.quantize.observers import PercentileObserver
from compress.recipe import LinearQuantize
from tests.conftest import from_checkpoint

CPU = torch.device("cpu")


def _is_int8(model: torch.nn.Module) -> bool:
    return any("quantized" in type(m).__module__ for m in model.modules())


def test_int8_execution_runs_in_onnx_runtime_and_reloads_identically(tmp_path, cnn_base):
    from compress.export.onnx import OrtModule

    raw = from_checkpoint(tmp_path, cnn_base, {"quantize": {"bits": 8, "execute": "int8", "observer": "minmax"}})
    result = compress.run(compress.load_recipe(raw))
    rows = {r.stage: r for r in result.report.rows}
    assert list(rows) == ["checkpoint", "quantize", "int8"]
    assert rows["int8"].accuracy >= rows["checkpoint"].accuracy - 1.0
    assert isinstance(result.state.runtime, OrtModule) and result.state.execute["runtime"] == "onnxruntime"
    assert b"QuantizeLinear" in result.state.runtime.onnx_bytes
    assert any(n.startswith("int8 execution: onnxruntime") for n in result.report.notes)
    slower = [n for n in result.report.notes if "SLOWER than float" in n]
    assert bool(slower) == (rows["int8"].latency_ms > rows["quantize"].latency_ms)
    fast, slow = replace(rows["quantize"], latency_ms=1.0), replace(rows["int8"], latency_ms=2.4)
    assert "2.4× SLOWER" in _slower_note(fast, slow)[0] and _slower_note(slow, fast) == []
    reloaded = compress.load(result.output)
    x = result.state.data.test.x[:200]
    assert isinstance(reloaded, OrtModule) and torch.equal(reloaded(x), result.state.runtime(x))
    assert reloaded.onnx_bytes == result.state.runtime.onnx_bytes  # rebuilt from the stored plan, byte for byte
    assert not isinstance(compress.load(result.output, execute=False), OrtModule)
    again = compress.run(compress.load_recipe(from_checkpoint(tmp_path / "again", result.output)), write=False)
    assert again.report.final.accuracy == rows["int8"].accuracy  # what `modelzip eval` does


def test_without_onnx_runtime_int8_falls_back_to_torch_ao_and_says_so(tmp_path, cnn_base, monkeypatch):
    from compress import execution

    monkeypatch.setattr(execution, "ort_available", lambda: False)
    raw = from_checkpoint(tmp_path, cnn_base, {"quantize": {"bits": 8, "execute": "int8", "observer": "minmax"}})
    result = compress.run(compress.load_recipe(raw))
    assert _is_int8(result.state.runtime) and result.state.execute["runtime"] == "torch.ao"
    assert any("torch.ao FX (deprecated" in n for n in result.report.notes)
    x = result.state.data.test.x[:200]
    assert torch.equal(compress.load(result.output)(x), result.state.runtime(x))


@pytest.mark.parametrize("observer", ["histogram", "percentile"])
def test_resnet20_static_int8_runs_and_tracks_float(observer):
    torch.manual_seed(0)
    model = build_model("resnet20", {"num_classes": 10, "in_channels": 3}).eval()
    split = Split(torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,)))
    data = Dataset("random", split, split, None, 10, False)
    q, plan = int8.convert(model, LinearQuantize(bits=8, observer=observer, calibration_batches=1), data,
                           RunContext(CPU, 0))
    assert plan["mode"] == "static" and len(plan["activations"]) > 20 and _is_int8(q)
    with torch.no_grad():
        ref, out = model(split.x), q(split.x)
    assert (out - ref).abs().max() < 0.1 * ref.abs().max()
    assert torch.equal(int8.rebuild(model, plan)(split.x), out)


def test_linear_only_nets_get_dynamic_int8():
    model = build_model("lenet-300-100", {}).eval()
    split = Split(torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,)))
    q, plan = int8.convert(model, LinearQuantize(bits=8), Dataset("r", split, split, None, 10, False),
                           RunContext(CPU, 0))
    assert plan["mode"] == "dynamic" and _is_int8(q)
    assert torch.allclose(q(split.x), model(split.x), atol=0.05)


def test_int8_errors_name_the_way_out(monkeypatch):
    with pytest.raises(UnsupportedError, match="device is 'cuda'") as info:
        int8.pick_engine(torch.device("cuda"))
    assert "--device cpu" in info.value.hint
    monkeypatch.setattr(int8, "engines", lambda: [])
    with pytest.raises(UnsupportedError, match=r"no int8 engine \(engines: none\)"):
        int8.pick_engine(CPU)


def test_percentile_observer_clips_outliers():
    x = torch.cat([torch.randn(100_000), torch.tensor([500.0])])
    obs = PercentileObserver(dtype=torch.quint8)
    obs(x)
    assert 3.0 < float(obs.max_val) < 10.0
