"""Attention layers: nn.MultiheadAttention's q/k/v projection (a bare parameter, a quarter of a ViT)
is pruned, quantized, allocated and reported like any Linear weight, and round-trips exactly."""
import pytest
import torch
import torch.nn as nn

import compress
from compress.layers import weight_params, weight_shapes
from tests.conftest import tiny_recipe

FACTORY = "tests.prune.test_attention:tiny_attention"


class TinyAttention(nn.Module):
    """Patches → one transformer encoder layer → mean → classifier (a ViT in miniature)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, dim: int = 16) -> None:
        super().__init__()
        self.embed = nn.Conv2d(in_channels, dim, 7, stride=7)
        self.block = nn.TransformerEncoderLayer(dim, 2, 32, dropout=0.0, batch_first=True)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x).flatten(2).transpose(1, 2)
        return self.head(self.block(tokens).mean(1))


def tiny_attention(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    return TinyAttention(num_classes, in_channels)


def test_the_attention_projection_is_a_weight_methods_see():
    model = tiny_attention()
    assert "block.self_attn.in_proj_weight" in weight_params(model, [])
    assert "block.self_attn.in_proj_weight" not in weight_params(model, ["block.self_attn"])
    kind, shape, _ = weight_shapes(model)["block.self_attn.in_proj_weight"]
    assert (kind, shape) == ("MultiheadAttention", [48, 16])


@pytest.mark.parametrize("allocation", ["uniform", "sensitivity"])
def test_attention_is_pruned_quantized_and_round_trips(tmp_path, allocation):
    raw = tiny_recipe(tmp_path, model={"name": FACTORY},
                      pipeline=[{"train": {"epochs": 1, "batch_size": 32}},
                                {"prune": {"rate": 70, "scope": "layer", "allocation": allocation}},
                                {"quantize": {"bits": 4}}, "evaluate"])
    result = compress.run(compress.load_recipe(raw))
    in_proj = result.model.block.self_attn.in_proj_weight.detach()
    assert float((in_proj == 0).float().mean()) > 0.3  # pruned (70 % by layer, or its allocated share)
    assert all(row.unique().numel() <= 16 for row in in_proj)  # on a 4-bit grid per output channel
    layers = {s.name: s for s in result.report.layers}
    assert layers["block.self_attn.in_proj_weight"].bits == 4.0
    loaded = compress.load(result.output, trust_model_code=True)
    x = torch.randn(4, 1, 28, 28)
    assert torch.equal(result.model.eval()(x), loaded(x))
