"""Sparse variational dropout: the noise it trains with, the KL it pays, the weights it learns to drop."""
import pytest
import torch
from pydantic import ValidationError

import compress
from compress.context import RunContext
from compress.data import load_dataset
from compress.evaluate import evaluate
from compress.method import Workspace
from compress.methods import apply
from compress.prune.variational import VariationalHook, log_alpha, neg_kl
from compress.recipe import DataConfig, FinetuneConfig, UnstructuredPrune
from compress.recipe.schema import Recipe

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def trained_lenet(lenet_base):
    return lenet_base, load_dataset(DataConfig(name="digits"))


def _variational(trained, epochs=12, **cfg):
    path, data = trained
    model = compress.load(path)
    finetune = FinetuneConfig(epochs=epochs, batch_size=64, optimizer="adam", lr=3e-3)
    out = apply(model, UnstructuredPrune(schedule="variational", finetune=finetune, **cfg),
                Workspace(data, RunContext(CPU, 0), 1000))
    return model, out, data


def test_the_noise_has_the_variance_the_log_sigma2_sets():
    layer = torch.nn.Linear(3, 2)
    hook = VariationalHook(torch.nn.Sequential(layer), {"0.weight": layer.weight}, 100, 1.0, 0.5, seed=0)
    hook.attach()
    with torch.no_grad():
        layer.svd_log_sigma2.copy_(torch.log(torch.tensor([[0.5, 1.0, 2.0], [0.0, 0.0, 4.0]]) + 1e-30))
    x = torch.tensor([[1.0, 2.0, 3.0]]).expand(20000, 3)
    with torch.no_grad():
        out = torch.nn.Sequential(layer).train()(x)
    var = out.var(0)
    want = torch.tensor([0.5 + 4.0 + 18.0, 36.0])  # Σ x² σ²
    assert torch.allclose(var, want, rtol=0.05), var
    layer.eval()
    assert torch.equal(layer(x[:2]), torch.nn.functional.linear(x[:2], layer.weight, layer.bias))  # no noise
    alphas = hook.detach()
    assert set(alphas) == {"0.weight"} and not hasattr(layer, "svd_log_sigma2") and not layer._forward_hooks


def test_the_kl_falls_as_the_noise_grows_and_vanishes_for_pure_noise():
    la = torch.linspace(-10, 10, 41)
    kl = torch.stack([-neg_kl(v.reshape(1)) for v in la])
    assert bool((kl[1:] < kl[:-1]).all()) and float(kl[-1]) < 1e-3 and float(kl[0]) > 5.0
    w, ls2 = torch.tensor([1.0, 0.1, 0.0]), torch.tensor([0.0, 0.0, 0.0])
    assert log_alpha(w, ls2).tolist() == pytest.approx([0.0, 4.6052, 10.0], abs=1e-3)


@pytest.mark.slow
def test_variational_dropout_learns_a_sparse_net_that_keeps_its_accuracy(trained_lenet):
    path, data = trained_lenet
    before = evaluate(compress.load(path), data.test, 1000, CPU).accuracy
    model, out, _ = _variational(trained_lenet, kl_weight=0.05, ramp=0.3)
    weights = [m.weight for m in model if isinstance(m, torch.nn.Linear)]
    removed = sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
    after = evaluate(model, data.test, 1000, CPU).accuracy
    assert removed > 0.9 and after > before - 2.0, (removed, before, after)
    assert not any("svd" in k for k in model.state_dict()) and "variational dropout" in out.notes[0]
    assert len(out.hooks) == 1  # the masks later training keeps
    zeros = [w == 0 for w in weights]
    torch.nn.init.normal_(weights[0])
    out.hooks[0].after_step(model, 1, 1)
    assert all(bool((w[z] == 0).all()) for w, z in zip(weights, zeros))


def test_variational_with_a_rate_removes_exactly_that_share_highest_log_alpha_first(trained_lenet):
    model, out, _ = _variational(trained_lenet, epochs=3, rate=70, scope="layer", zero_unread=False)
    for m in model:
        if isinstance(m, torch.nn.Linear):
            assert float((m.weight == 0).float().mean()) == pytest.approx(0.7, abs=0.01)
    assert "rate 70 %" in out.notes[0]



@pytest.mark.slow
def test_learned_sparsity_is_not_held_at_the_global_ceiling_nor_said_to_be(trained_lenet):
    model, out, _ = _variational(trained_lenet, epochs=3, kl_weight=50.0, ramp=0.1)
    assert float((model[1].weight == 0).float().mean()) > 0.99  # past max_layer_rate: the data decided
    assert not any("ceiling" in n for n in out.notes)


def test_a_recipe_may_leave_the_rate_to_variational_dropout_but_not_to_magnitude_pruning():
    base = {"model": {"name": "lenet-300-100"}, "data": {"name": "digits"}}
    Recipe(**base, pipeline=[{"prune": {"schedule": "variational"}}])
    with pytest.raises(ValidationError, match="no rate given"):
        Recipe(**base, pipeline=[{"prune": {"schedule": "gradual"}}])
