"""The quantize stage end to end: files that shrink by bits/32, QAT that stays on the grid, exact reloads."""
import pytest
import torch

import compress
from compress.context import RunContext
from compress.errors import InputError
from compress.models import build_model
from compress.pipeline import PipelineState, RunResult
from compress.quantize import apply
from compress.recipe import QuantizeConfig
from tests.conftest import tiny_recipe

TRAIN = {"train": {"epochs": 2, "batch_size": 32, "optimizer": "adamw", "lr": 0.002}}


def _run(tmp_path, *stages) -> RunResult:
    raw = tiny_recipe(tmp_path)
    raw["pipeline"] = [TRAIN, *stages, "evaluate"]
    return compress.run(compress.load_recipe(raw))


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach() for n, p in model.named_parameters() if n.endswith("weight")}


def _assert_reload_identical(result: RunResult) -> None:
    x = result.state.data.test.x[:128]
    assert torch.equal(compress.load(result.output)(x), result.model.eval()(x))


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_linear_file_shrinks_by_bits_over_32_and_reloads_exactly(tmp_path, bits):
    result = _run(tmp_path, {"quantize": {"bits": bits}})
    rows = {r.stage: r for r in result.report.rows}
    assert rows["quantize"].size_bytes <= (bits / 32 + 0.012) * result.report.fp32_bytes
    assert rows["quantize"].accuracy >= rows["train"].accuracy - (0.6 if bits == 8 else 3 if bits == 4 else 40)
    for name, w in _weights(result.model).items():
        grid = result.state.grids[name]
        assert torch.equal(grid.dequantize(grid.quantize(w)), w)
    _assert_reload_identical(result)


def test_qat_keeps_linear_grid_and_pruned_zeros(tmp_path):
    result = _run(tmp_path, {"prune": {"rate": 60}}, {"quantize": {"bits": 3, "range": "mse"}},
                  {"finetune": {"epochs": 2, "optimizer": "sgd", "lr": 0.02, "momentum": 0.9}})
    rows = {r.stage: r for r in result.report.rows}
    assert rows["finetune"].nonzero <= rows["prune"].nonzero
    assert rows["finetune"].accuracy >= rows["quantize"].accuracy - 1 and rows["finetune"].accuracy > 85
    for name, w in _weights(result.model).items():
        grid = result.state.grids[name]
        assert torch.equal(grid.dequantize(grid.quantize(w)), w)
    for p, keep in result.state.hooks[0].pairs:
        assert torch.all(p[~keep] == 0)
    _assert_reload_identical(result)


def test_kmeans_finetune_moves_centroids_but_keeps_sharing(tmp_path):
    result = _run(tmp_path, {"prune": {"rate": 50}}, {"quantize": {"bits": 2, "method": "kmeans"}})
    before = {n: torch.unique(w) for n, w in _weights(result.model).items()}
    result2 = _run(tmp_path / "b", {"prune": {"rate": 50}}, {"quantize": {"bits": 2, "method": "kmeans"}},
                   {"finetune": {"epochs": 2, "lr": 1e-3}})
    rows = {r.stage: r for r in result2.report.rows}
    assert rows["finetune"].accuracy >= rows["quantize"].accuracy and rows["finetune"].accuracy > 80
    for name, w in _weights(result2.model).items():
        values = torch.unique(w)
        assert values.numel() <= 5 and (values == 0).any()  # 4 shared values + the pruned zeros
        assert not torch.equal(values, before[name])  # centroids learned
    _assert_reload_identical(result2)


def test_layer_bits_and_fp16(tmp_path):
    result = _run(tmp_path, {"quantize": {"bits": 4, "layer_bits": {"0": 8, "9": 16}}})
    bits = {s.name: s.bits for s in result.report.layers}
    assert bits == {"0": 8.0, "3": 4.0, "7": 4.0, "9": 16.0}
    w9 = result.model[9].weight
    assert torch.equal(w9, w9.half().float()) and "9.weight" not in result.state.grids
    _assert_reload_identical(result)


def test_clear_errors():
    state = PipelineState(build_model("mnist-cnn", {}), None, None, RunContext(torch.device("cpu")), 100)
    with pytest.raises(InputError, match="no bit width"):
        apply(state, QuantizeConfig())
    with pytest.raises(InputError, match="needs ≥ 2 bits"):
        apply(state, QuantizeConfig(bits=1))
    with pytest.raises(InputError, match=r"bit widths \[9\]"):
        apply(state, QuantizeConfig(bits=4, layer_bits={"0": 9}))
    with pytest.raises(InputError, match="no Linear/Conv weight"):
        apply(state, QuantizeConfig(bits=4, skip=["*"]))


def test_prune_after_kmeans_is_refused(tmp_path):
    from compress.errors import UnsupportedError

    with pytest.raises(UnsupportedError, match="before the quantize stage"):
        _run(tmp_path, {"quantize": {"bits": 2, "method": "kmeans"}}, {"prune": {"rate": 50}})


def test_loaded_artifact_keeps_its_grids_so_sizes_stay_honest(tmp_path):
    result = _run(tmp_path, {"quantize": {"bits": 4}})
    raw = tiny_recipe(tmp_path)
    raw["model"]["checkpoint"], raw["pipeline"] = str(result.output), ["evaluate"]
    again = compress.run(compress.load_recipe(raw), write=False)
    assert set(again.state.grids) == set(result.state.grids)
    assert again.report.rows[0].size_bytes <= 1.05 * result.report.final.size_bytes
    assert again.report.rows[0].accuracy == result.report.final.accuracy
