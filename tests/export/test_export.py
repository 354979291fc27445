"""Exports verified by running them: ONNX (float and int8 through ONNX Runtime) and torch.export programs."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import compress
from cli.app import app
from compress.context import RunContext
from compress.data import load_dataset
from compress.errors import UnsupportedError
from compress.export import export, onnx, pt2
from compress.recipe import DataConfig, ExportConfig
from tests.conftest import from_checkpoint, read_json, tiny_recipe, write_recipe

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DataConfig(name="digits"))


@pytest.fixture(scope="module")
def quantized_run(tmp_path_factory, cnn_base):
    """The baseline with 8-bit weights, exported three ways."""
    tmp = tmp_path_factory.mktemp("exported")
    raw = from_checkpoint(tmp, cnn_base, {"quantize": {"bits": 8}}, {"export": {"format": "onnx"}},
                          {"export": {"format": "onnx", "int8": True}}, {"export": {"format": "pt2"}})
    return compress.run(compress.load_recipe(raw))


def test_float_exports_match_pytorch_and_their_files_run_anywhere(quantized_run):
    report = quantized_run.report
    rows = {e.format: e for e in report.exports}
    assert set(rows) == {"onnx", "onnx-int8", "pt2"}
    assert rows["onnx"].max_abs_diff <= 1e-4 and rows["onnx"].accuracy == report.final.accuracy
    assert rows["pt2"].max_abs_diff <= 1e-4 and rows["pt2"].accuracy == report.final.accuracy
    folder = quantized_run.output.parent
    assert {p.name for p in folder.iterdir()} >= {"model.mzip", "model.onnx", "model.int8.onnx", "model.pt2"}
    model = quantized_run.model.cpu().eval()
    session = onnx.OrtModule((folder / "model.onnx").read_bytes())
    for batch in (1, 7):  # a dynamic batch dimension
        x = quantized_run.state.data.test.x[:batch]
        assert torch.allclose(session(x), model(x), atol=1e-4)
    program = torch.export.load(str(folder / "model.pt2")).module()
    x = quantized_run.state.data.test.x[:5]
    assert torch.allclose(program(x), model(x), atol=1e-5)


def test_int8_onnx_keeps_modelzips_8_bit_codes_and_accuracy(quantized_run):
    import onnx as onnx_lib
    from onnx import numpy_helper

    rows = {e.format: e for e in quantized_run.report.exports}
    row = rows["onnx-int8"]
    assert row.accuracy >= quantized_run.report.final.accuracy - 1.0 and row.size_bytes < 0.3 * rows["onnx"].size_bytes
    graph = onnx_lib.load(row.file).graph
    int8 = sorted((a for a in (numpy_helper.to_array(i) for i in graph.initializer
                               if i.data_type == onnx_lib.TensorProto.INT8) if a.ndim >= 2), key=lambda a: a.size)
    grids = quantized_run.state.grids
    ours = sorted(((grids[n].quantize(w.detach().cpu()) - grids[n].zero_point.view(-1, *[1] * (w.dim() - 1)))
                   .numpy() for n, w in quantized_run.model.named_parameters() if n in grids), key=lambda a: a.size)
    assert len(int8) == len(ours) == 4
    for theirs, mine in zip(int8, ours, strict=True):  # the same integers, channel by channel
        assert np.array_equal(theirs.reshape(mine.shape[0], -1), mine.reshape(mine.shape[0], -1))


def test_fixed_batch_export_runs_any_number_of_inputs(digits, cnn_base):
    model = compress.load(cnn_base)
    exported = export(model, ExportConfig(batch=16), digits.test.x[:1], digits.train, RunContext(CPU), "minmax")
    x = digits.test.x[:37]
    assert torch.allclose(exported.runner(x), model(x), atol=1e-4)


def test_an_unexportable_model_is_one_line_naming_the_code():
    from tests.forge import data_dependent

    for fn in (lambda m, x: onnx.to_onnx(m, x, None, 18), lambda m, x: pt2.to_pt2(m, x, None)):
        with pytest.raises(UnsupportedError, match=r"data-dependent .* in forward\(\) at forge.py:\d+") as info:
            fn(data_dependent(), torch.randn(1, 1, 28, 28))
        assert "\n" not in info.value.message


def test_export_command_writes_beside_the_artifact(tmp_path, cnn_base):
    model = tmp_path / "model.mzip"
    model.write_bytes(cnn_base.read_bytes())
    res = CliRunner().invoke(app, ["export", str(model), "--int8", "--json", str(tmp_path / "e.json"), "-q"])
    assert res.exit_code == 0, res.output
    report = read_json(tmp_path / "e.json")
    assert report["exports"][0]["file"] == str(tmp_path / "model.int8.onnx") and (tmp_path / "model.int8.onnx").is_file()
    assert "onnx-int8" in res.stdout and "onnxruntime" in res.stdout
    res = CliRunner().invoke(app, ["export", str(model), "--format", "pt2", "--int8", "-q"])
    assert res.exit_code == 2 and "use format: onnx" in res.output


def test_run_export_option_follows_the_over_budget_name(tmp_path, cnn_base):
    raw = from_checkpoint(tmp_path, cnn_base, {"prune": {"rate": 99}}, constraints={"max_accuracy_drop": 0.1})
    res = CliRunner().invoke(app, ["run", str(write_recipe(tmp_path, raw)), "--export", "onnx", "-q"])
    assert res.exit_code == 3, res.output
    assert (tmp_path / "out" / "model.over-budget.onnx").is_file() and not (tmp_path / "out" / "model.onnx").exists()
    res = CliRunner().invoke(app, ["run", str(write_recipe(tmp_path, tiny_recipe(tmp_path))), "--export", "onx"])
    assert res.exit_code == 2 and "did you mean 'onnx'" in res.output


def test_without_the_export_extra_the_error_says_how_to_get_it(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(UnsupportedError, match="onnxruntime is missing") as info:
        onnx.require()
    assert "modelzip[export]" in info.value.hint
