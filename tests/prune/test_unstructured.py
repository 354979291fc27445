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
from compress.progress import Progress
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
    model = pruned(trained_lenet, rate=80, scope=scope, zero_unread=False)  # the criterion's own rate
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


def _small_head_model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 64), torch.nn.ReLU(),
                                torch.nn.Linear(64, 10))
    with torch.no_grad():
        model[3].weight.mul_(1e-3)  # the classifier's weights all below any global threshold
    return model


@pytest.mark.parametrize("ceiling, head_kept", [(99.0, 7), (100.0, 0)])
def test_global_pruning_never_empties_a_layer_past_its_ceiling(trained_lenet, ceiling, head_kept):
    _, data = trained_lenet
    model = _small_head_model()
    cfg = UnstructuredPrune(rate=90, max_layer_rate=ceiling, zero_unread=False)  # the threshold's own zeros
    out = apply(model, cfg, Workspace(data, RunContext(CPU, 0), 1000))
    weights = [model[1].weight, model[3].weight]
    assert int((model[3].weight != 0).sum()) == head_kept  # 640 × 1 % = 6.4 → at most 633 of 640 removed
    zeros = sum(int((w == 0).sum()) for w in weights)
    assert zeros == round(0.9 * sum(w.numel() for w in weights))  # the rate is still exact: the rest gave more
    held = [n for n in out.notes if "per-layer ceiling" in n]
    assert (held == []) == (ceiling == 100.0)
    if held:
        assert "(3)" in held[0]


def test_a_rate_above_the_ceiling_is_refused():
    with pytest.raises(ValidationError, match="above max_layer_rate 99"):
        UnstructuredPrune(rate=99.5)
    assert UnstructuredPrune(rate=99.5, scope="layer").rate == 99.5
    assert UnstructuredPrune(rate=99.5, max_layer_rate=100).rate == 99.5


class _Notes(Progress):
    def __init__(self) -> None:
        self.notes: list[str] = []

    def note(self, message: str) -> None:
        self.notes.append(message)


def test_patterns_that_name_no_module_are_refused_before_training(tmp_path, lenet_base):
    for option, value in (("skip", ["features.?.?"]), ("skip", [""]), ("layer_rates", {"fc9": 50.0})):
        raw = from_checkpoint(tmp_path, lenet_base, {"prune": {"rate": 50, option: value}},
                              {"finetune": {"epochs": 1}}, model={"name": "lenet-300-100"})
        raw["pipeline"].insert(0, {"train": {"epochs": 1}})
        progress = _Notes()
        with pytest.raises(InputError, match=f"prune.{option}: .* matches no module") as info:
            compress.run(compress.load_recipe(raw), progress=progress)
        assert "module names look like 0, 1, 2" in info.value.hint
        assert not any(n.startswith("stage ") for n in progress.notes)  # refused before the train stage
    raw = from_checkpoint(tmp_path, lenet_base, {"quantize": {"bits": 4, "layer_bits": {"9": 8}}},
                          model={"name": "lenet-300-100"})
    with pytest.raises(InputError, match=r"quantize.layer_bits: '9' matches no module"):
        compress.run(compress.load_recipe(raw))
