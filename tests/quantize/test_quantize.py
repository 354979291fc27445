"""The quantize stage end to end: files that shrink by bits/32, QAT that stays on the grid, exact reloads."""
import pytest
import torch

import compress
from compress.context import RunContext
from compress.data import load_dataset
from compress.errors import InputError
from compress.method import Workspace
from compress.methods import apply
from compress.models import build_model
from compress.pipeline import RunResult
from compress.recipe import DataConfig, LinearQuantize
from tests.conftest import from_checkpoint, tiny_recipe


@pytest.fixture
def run_from(tmp_path, cnn_base):
    def _run(*stages, sub: str = "a") -> RunResult:
        return compress.run(compress.load_recipe(from_checkpoint(tmp_path / sub, cnn_base, *stages)))
    return _run


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach() for n, p in model.named_parameters() if n.endswith("weight")}


def _assert_reload_identical(result: RunResult) -> None:
    x = result.state.data.test.x[:128]
    assert torch.equal(compress.load(result.output)(x), result.model.eval()(x))


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_linear_file_shrinks_by_bits_over_32_and_reloads_exactly(run_from, bits):
    result = run_from({"quantize": {"bits": bits}})
    rows = {r.stage: r for r in result.report.rows}
    assert rows["quantize"].size_bytes <= (bits / 32 + 0.012) * result.report.fp32_bytes
    assert rows["quantize"].accuracy >= rows["checkpoint"].accuracy - (0.6 if bits == 8 else 3 if bits == 4 else 40)
    for name, w in _weights(result.model).items():
        grid = result.state.grids[name]
        assert torch.equal(grid.dequantize(grid.quantize(w)), w)
    _assert_reload_identical(result)


def test_qat_keeps_linear_grid_and_pruned_zeros(run_from):
    result = run_from({"prune": {"rate": 60}}, {"quantize": {"bits": 3, "range": "mse"}},
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


def test_kmeans_finetune_moves_centroids_but_keeps_sharing(run_from):
    result = run_from({"prune": {"rate": 50}}, {"quantize": {"bits": 2, "method": "kmeans"}})
    before = {n: torch.unique(w) for n, w in _weights(result.model).items()}
    result2 = run_from({"prune": {"rate": 50}}, {"quantize": {"bits": 2, "method": "kmeans"}},
                       {"finetune": {"epochs": 2, "lr": 1e-3}}, sub="b")
    rows = {r.stage: r for r in result2.report.rows}
    assert rows["finetune"].accuracy >= rows["quantize"].accuracy and rows["finetune"].accuracy > 80
    for name, w in _weights(result2.model).items():
        values = torch.unique(w)
        assert values.numel() <= 5 and (values == 0).any()  # 4 shared values + the pruned zeros
        assert not torch.equal(values, before[name])  # centroids learned
        assert torch.equal(values, values.half().float())  # stored as float16 (centroid_bits 16, the default)
    _assert_reload_identical(result2)


def test_float16_centroids_keep_steps_smaller_than_a_float16_step():
    from compress.quantize.kmeans import SharedWeights

    param = torch.nn.Parameter(torch.tensor([1.0, 1.0, -1.0, -1.0, 0.0]))
    shared = {h: SharedWeights(torch.nn.Parameter(param.detach().clone()), 1, half=h) for h in (True, False)}
    for layer in shared.values():
        layer.tie()
        for _ in range(200):  # 200 optimizer steps of 1e-5: each far below float16's step of ~1e-3 at 1.0
            with torch.no_grad():
                layer.param.add_(torch.tensor([1e-5, 1e-5, 0.0, 0.0, 0.0]))
            layer.update_centroids()
            layer.tie()
    half, full = shared[True].param.detach(), shared[False].param.detach()
    assert torch.equal(half, half.half().float()) and half[4] == 0  # on float16, the pruned weight still 0
    assert abs(float(half[0]) - float(full[0])) <= 1e-3 and float(half[0]) > 1.0  # the small steps added up


def test_centroid_bits_32_keeps_float32_centroids(run_from):
    result = run_from({"quantize": {"bits": 3, "method": "kmeans", "centroid_bits": 32}}, sub="c32")
    values = torch.cat([torch.unique(w) for w in _weights(result.model).values()])
    assert not torch.equal(values, values.half().float())


def test_layer_bits_and_fp16(run_from):
    result = run_from({"quantize": {"bits": 4, "layer_bits": {"0": 8, "9": 16}}})
    bits = {s.name: s.bits for s in result.report.layers}
    assert bits == {"0": 8.0, "3": 4.0, "7": 4.0, "9": 16.0}
    w9 = result.model[9].weight
    assert torch.equal(w9, w9.half().float()) and "9.weight" not in result.state.grids
    _assert_reload_identical(result)


def test_clear_errors():
    ws = Workspace(load_dataset(DataConfig(name="digits")), RunContext(torch.device("cpu")), 100)
    model = build_model("mnist-cnn", {})
    with pytest.raises(InputError, match="no bit width"):
        apply(model, LinearQuantize(), ws)
    with pytest.raises(InputError, match="no Linear/Conv weight"):
        apply(model, LinearQuantize(bits=4, skip=["*"]), ws)


def test_loaded_artifact_keeps_its_grids_so_sizes_stay_honest(tmp_path, run_from):
    result = run_from({"quantize": {"bits": 4}})
    raw = tiny_recipe(tmp_path)
    raw["model"]["checkpoint"], raw["pipeline"] = str(result.output), ["evaluate"]
    again = compress.run(compress.load_recipe(raw), write=False)
    assert set(again.state.grids) == set(result.state.grids)
    assert again.report.rows[0].size_bytes == result.report.final.size_bytes  # the file itself
    assert again.report.rows[0].accuracy == result.report.final.accuracy


@pytest.mark.parametrize("bias_bits", [16, 8])
def test_biases_quantized_stay_on_their_grid_through_finetuning_and_cost_fewer_bytes(run_from, bias_bits):
    stages = [{"quantize": {"bits": 4, "method": "kmeans", "bias_bits": bias_bits}},
              {"finetune": {"epochs": 1, "optimizer": "adam", "lr": 0.001}}]
    result, plain = run_from(*stages), run_from({"quantize": {"bits": 4, "method": "kmeans"}}, stages[1], sub="b")
    biases = {n: p.detach() for n, p in result.model.named_parameters() if n.endswith("bias")}
    assert biases
    for name, b in biases.items():
        if bias_bits == 16:
            assert torch.equal(b.half().float(), b) and name not in result.state.grids
        else:
            grid = result.state.grids[name]
            assert grid.bits == 8 and torch.equal(grid.dequantize(grid.quantize(b)), b)
    n_bias = sum(b.numel() for b in biases.values())
    saved = plain.report.rows[-1].size_bytes - result.report.rows[-1].size_bytes
    # fp16: 2 of 4 bytes per bias saved; 8-bit: more than fp16 saves, after each tensor's grid in the manifest
    assert saved >= n_bias * 2 * (0.8 if bias_bits == 16 else 1.0), (saved, n_bias)
    assert result.report.rows[-1].accuracy >= plain.report.rows[-1].accuracy - 2
    _assert_reload_identical(result)

