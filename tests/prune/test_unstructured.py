"""Unstructured pruning: exact rates, zeros that survive fine-tuning, scores that beat random."""
import pytest
import torch

from pydantic import ValidationError

import compress
from compress.context import RunContext
from compress.data import load_dataset
from compress.errors import InputError
from compress.evaluate import evaluate
from compress.method import Workspace
from compress.methods import apply
from compress.recipe import DataConfig, UnstructuredPrune
from tests.conftest import from_checkpoint

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def trained_lenet(lenet_base):
    return lenet_base, load_dataset(DataConfig(name="digits"))


def pruned(trained, **cfg) -> torch.nn.Module:
    path, data = trained
    model = compress.load(path)
    apply(model, UnstructuredPrune(**cfg), Workspace(data, RunContext(CPU, 0), 1000))
    return model


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_rate_is_exact(trained_lenet, scope):
    model = pruned(trained_lenet, rate=80, scope=scope)
    weights = [m.weight for m in model if isinstance(m, torch.nn.Linear)]
    zeros = sum(int((w == 0).sum()) for w in weights)
    assert zeros == pytest.approx(0.8 * sum(w.numel() for w in weights), abs=3)
    if scope == "layer":
        for w in weights:
            assert float((w == 0).float().mean()) == pytest.approx(0.8, abs=0.01)


def test_skip_and_layer_rates(trained_lenet):
    model = pruned(trained_lenet, rate=50, skip=["5"], layer_rates={"1": 90.0})
    assert int((model[5].weight == 0).sum()) == 0
    assert float((model[1].weight == 0).float().mean()) == pytest.approx(0.9, abs=0.01)
    assert float((model[3].weight == 0).float().mean()) == pytest.approx(0.5, abs=0.01)


def test_magnitude_and_taylor_beat_random(trained_lenet):
    _, data = trained_lenet
    acc = {m: evaluate(pruned(trained_lenet, rate=90, method=m), data.test, 1000, CPU).accuracy
           for m in ("magnitude", "taylor", "random")}
    assert acc["magnitude"] > acc["random"] + 5 and acc["taylor"] > acc["random"] + 5, acc


def test_pruned_weights_stay_exactly_zero_through_finetuning(tmp_path, cnn_base):
    raw = from_checkpoint(tmp_path, cnn_base, {"prune": {"rate": 70}},
                          {"finetune": {"epochs": 2, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9,
                                        "weight_decay": 0.001}})
    result = compress.run(compress.load_recipe(raw))
    masks = result.state.hooks[0].pairs
    for p, keep in masks:
        assert torch.all(p[~keep] == 0)
    rows = {r.stage: r for r in result.report.rows}
    assert rows["finetune"].nonzero == rows["prune"].nonzero < 0.35 * rows["checkpoint"].nonzero
    assert rows["prune"].size_bytes < 0.5 * rows["checkpoint"].size_bytes


def test_clear_errors(trained_lenet):
    with pytest.raises(InputError, match="no rate given"):
        pruned(trained_lenet)  # the API without a recipe: the handler says it
    with pytest.raises(InputError, match="no prunable layer"):
        pruned(trained_lenet, rate=50, skip=["*"])
    with pytest.raises(ValidationError, match="less than 100"):
        UnstructuredPrune(rate=100)
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        UnstructuredPrune(rate=-1)


def test_sensitivity_allocation_meets_the_rate_with_per_layer_rates(tmp_path, lenet_base):
    raw = from_checkpoint(tmp_path, lenet_base, {"prune": {"rate": 80, "allocation": "sensitivity"}},
                          model={"name": "lenet-300-100"})
    result = compress.run(compress.load_recipe(raw))
    weights = {n: m.weight for n, m in result.model.named_modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))}
    zeros = {n: float((w == 0).float().mean()) for n, w in weights.items()}
    total = sum(int((w == 0).sum()) for w in weights.values()) / sum(w.numel() for w in weights.values())
    assert total == pytest.approx(0.80, abs=0.002)
    assert max(zeros.values()) - min(zeros.values()) > 0.2  # not uniform
    assert "sensitivity allocation at 80.0%" in " ".join(result.report.notes)
    assert result.report.final.accuracy > 50


def test_finetune_can_distill_from_the_model_before_compression(tmp_path, cnn_base):
    raw = from_checkpoint(tmp_path, cnn_base, {"prune": {"rate": 90}},
                          {"finetune": {"epochs": 1, "batch_size": 32, "distill": 0.5}})
    result = compress.run(compress.load_recipe(raw))
    teacher = result.state.teacher
    assert teacher is not None and not teacher.training
    dense = sum(int((p != 0).sum()) for p in teacher.parameters())
    assert dense == result.report.rows[0].nonzero  # the snapshot taken before pruning
    assert result.report.final.nonzero < 0.2 * dense
    assert result.report.final.accuracy > 80
