"""Zeroing units no later layer reads: exact (outputs unchanged on any input), through flattens and residual
adds, never the classifier, and nothing at all where the graph cannot be followed."""
import pytest
import torch
from torch import nn

from compress.models import build_model
from compress.prune.structured import output_layers
from compress.prune.unread import zero_unread_units


def _nonzero(model: nn.Module) -> int:
    return sum(int((p != 0).sum()) for p in model.parameters())


def _cut_inputs(model: nn.Module, share: float, seed: int = 0) -> None:
    """Prune every layer's weights from a random share of its inputs (what heavy pruning leaves)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear | nn.Conv2d):
                m.weight[:, torch.rand(m.weight.shape[1], generator=g) < share] = 0


def test_lenet_units_whose_outputs_nobody_reads_lose_their_weights_and_bias():
    torch.manual_seed(0)
    model = build_model("lenet-300-100", {}).eval()
    with torch.no_grad():
        model[3].weight[:, :40] = 0  # hidden units 0-39 of the first layer feed nothing
    x = torch.randn(64, 1, 28, 28)
    before = model(x)
    example = x[:1]
    assert zero_unread_units(model, example, output_layers(model, example)) == 40
    assert int((model[1].weight[:40] != 0).sum()) == 0 and int((model[1].bias[:40] != 0).sum()) == 0
    assert int((model[1].weight[40:] == 0).sum()) == 0  # read units untouched
    assert torch.equal(model(x), before)  # on inputs the check never saw


@pytest.mark.parametrize("name,shape", [("resnet20", (1, 3, 32, 32)), ("mnist-cnn", (1, 1, 28, 28)),
                                        ("lenet-5", (1, 1, 28, 28))])
def test_exact_through_flattens_and_residual_adds(name, shape):
    torch.manual_seed(0)
    model = build_model(name, {}).eval()
    _cut_inputs(model, 0.3)
    classifier = output_layers(model, torch.randn(*shape))
    head = [p.clone() for m in classifier for p in m.parameters()]
    x = torch.randn(16, *shape[1:])
    before, nonzero = model(x), _nonzero(model)
    assert zero_unread_units(model, torch.randn(*shape), classifier) > 0
    assert _nonzero(model) < nonzero
    assert torch.equal(model(x), before)
    assert all(torch.equal(a, p) for a, p in zip(head, (p for m in classifier for p in m.parameters())))


def test_units_a_layer_norm_mixes_are_left_alone():
    """LayerNorm reads every unit (its mean and variance): zeroing one would change the others' outputs."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 50), nn.LayerNorm(50), nn.ReLU(), nn.Linear(50, 10)).eval()
    with torch.no_grad():
        model[4].weight[:, :20] = 0
    state = {k: v.clone() for k, v in model.state_dict().items()}
    assert zero_unread_units(model, torch.randn(1, 1, 28, 28), [model[4]]) == 0
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())


def test_the_prune_stage_zeroes_unread_units_by_default_and_says_so(lenet_base):
    import compress
    from compress.context import RunContext
    from compress.data import load_dataset
    from compress.method import Workspace
    from compress.methods import apply
    from compress.recipe import DataConfig, UnstructuredPrune

    data = load_dataset(DataConfig(name="digits"))
    x = data.test.head(256).x
    runs = {}
    for flag in (True, False):
        model = compress.load(lenet_base)
        cfg = UnstructuredPrune(rate=99, scope="layer", zero_unread=flag)
        out = apply(model, cfg, Workspace(data, RunContext(torch.device("cpu"), 0), 1000))
        runs[flag] = (model, out.notes)
    (on, notes_on), (off, notes_off) = runs[True], runs[False]
    assert any("no later layer reads" in n for n in notes_on) and not any("later layer" in n for n in notes_off)
    assert _nonzero(on) < _nonzero(off)
    with torch.no_grad():
        assert torch.equal(on(x), off(x))
