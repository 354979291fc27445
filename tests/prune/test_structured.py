"""Channel pruning: physically smaller models that stay consistent across residuals and reload exactly."""
import pytest
import torch
import torch.nn as nn

import compress
from compress.context import RunContext
from compress.data import Dataset, Split
from compress.errors import InputError, UnsupportedError
from compress.method import Outcome, Workspace
from compress.methods import apply
from compress.models import build_model
from compress.progress import Progress
from compress.recipe import ChannelPrune
from tests.conftest import from_checkpoint, tiny_recipe

CPU = torch.device("cpu")


def _random_data(shape: tuple[int, ...], n: int = 64, classes: int = 10) -> Dataset:
    gen = torch.Generator().manual_seed(0)
    split = Split(torch.randn(n, *shape, generator=gen), torch.randint(0, classes, (n,), generator=gen))
    return Dataset("random", split, split, None, classes, False)


def _prune(model: nn.Module, shape: tuple[int, ...], **cfg) -> Outcome:
    return apply(model.eval(), ChannelPrune(**cfg), Workspace(_random_data(shape), RunContext(CPU, 0), 64))


@pytest.mark.parametrize("method", ["magnitude", "taylor", "random"])
def test_resnet20_channel_pruning_keeps_residuals_consistent(method):
    model = build_model("resnet20", {"num_classes": 10, "in_channels": 3})
    before = sum(p.numel() for p in model.parameters())
    out = _prune(model, (3, 32, 32), rate=50, method=method)
    after = sum(p.numel() for p in model.parameters())
    assert 0.15 * before < after < 0.5 * before
    assert model(torch.randn(4, 3, 32, 32)).shape == (4, 10)
    for block in model.modules():
        if hasattr(block, "shortcut") and len(block.shortcut) == 0:  # identity shortcut: widths must agree
            assert block.conv2.out_channels == block.conv1.in_channels
        if hasattr(block, "bn2"):
            assert block.bn2.num_features == block.conv2.out_channels
    assert any("channel pruning removed" in n for n in out.notes)


def test_mnist_cnn_channel_pruning_halves_hidden_layers_and_keeps_classes():
    model = build_model("mnist-cnn", {})
    _prune(model, (1, 28, 28), rate=50, scope="layer")
    assert [model[0].out_channels, model[3].out_channels, model[7].out_features] == [16, 32, 50]
    assert model[7].in_features == 32 * 25 and model[9].out_features == 10


def test_layer_rates_and_skip_apply_to_channels():
    model = build_model("mnist-cnn", {})
    _prune(model, (1, 28, 28), rate=50, scope="layer", skip=["0"], layer_rates={"3": 75.0})
    assert [model[0].out_channels, model[3].out_channels, model[7].out_features] == [32, 16, 50]


class Positional(nn.Module):
    """A learned per-position bias (C×H×W, like a position embedding): not one channel axis to slice."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 26, 26))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bias


def test_unsupported_op_is_named_with_a_way_out():
    model = nn.Sequential(nn.Conv2d(1, 8, 3), Positional(8), nn.Flatten(), nn.Linear(8 * 26 * 26, 10))
    with pytest.raises(UnsupportedError, match=r"module '1' \(Positional\).*") as info:
        _prune(model, (1, 28, 28), rate=50)
    assert "prune.skip" in info.value.hint and "unstructured" in info.value.hint


def positional_model(num_classes: int = 10) -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 8, 3), Positional(8), nn.Flatten(), nn.Linear(8 * 26 * 26, num_classes))


def test_a_model_channel_pruning_cannot_cut_is_refused_before_training(tmp_path):
    raw = tiny_recipe(tmp_path, model={"name": "tests.prune.test_structured:positional_model"},
                      pipeline=[{"train": {"epochs": 1}}, {"prune": {"rate": 50, "granularity": "channel"}}])
    stages: list[str] = []

    class Notes(Progress):
        def note(self, message: str) -> None:
            stages.append(message)

    with pytest.raises(UnsupportedError, match=r"module '1' \(Positional\)"):
        compress.run(compress.load_recipe(raw), progress=Notes())
    assert not any(n.startswith("stage ") for n in stages)


def test_channel_errors():
    from pydantic import ValidationError

    model = build_model("mnist-cnn", {})
    with pytest.raises(ValidationError, match="schedule"):
        ChannelPrune(rate=50, schedule="gradual")
    with pytest.raises(InputError, match="no prunable layer"):
        _prune(model, (1, 28, 28), rate=50, skip=["0", "3", "7"])
    with pytest.raises(UnsupportedError, match="put the channel prune stage first"):
        apply(model, ChannelPrune(rate=50), Workspace(_random_data((1, 28, 28)), RunContext(CPU, 0), 64,
                                                      grids={"0.weight": None}))


def test_channel_pruned_artifact_reloads_with_identical_logits(tmp_path, cnn_base):
    raw = from_checkpoint(tmp_path, cnn_base, {"prune": {"rate": 50, "granularity": "channel"}},
                          {"finetune": {"epochs": 1, "lr": 1e-3}})
    result = compress.run(compress.load_recipe(raw))
    rows = {r.stage: r for r in result.report.rows}
    assert rows["prune"].params < 0.45 * rows["checkpoint"].params
    assert rows["prune"].macs < 0.45 * rows["checkpoint"].macs and rows["checkpoint"].macs > 2_000_000
    assert result.report.final.accuracy > 85
    layers = {s.name: s for s in result.report.layers}
    assert layers["3"].shape_before == [64, 32, 3, 3] and layers["3"].shape[0] < 64
    reloaded = compress.load(result.output)
    x = result.state.data.test.x[:64]
    assert torch.equal(reloaded(x), result.model.eval()(x))
