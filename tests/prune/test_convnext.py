"""Per-channel parameters held outside layers (ConvNeXt's layer scale) are cut with their channels, and the
channel-pruned network round-trips exactly."""
import torch
from torch import nn

import compress
from compress.prune.blocks import channel_vector_dim
from tests.conftest import tiny_recipe

FACTORY = "tests.prune.test_convnext:tiny_convnext"


def tiny_convnext(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """torchvision's ConvNeXt with two small stages (a 1-channel stem for digits)."""
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt

    model = ConvNeXt([CNBlockConfig(16, 32, 1), CNBlockConfig(32, None, 1)], num_classes=num_classes)
    stem = model.features[0][0]
    model.features[0][0] = nn.Conv2d(in_channels, stem.out_channels, stem.kernel_size, stem.stride)
    return model


def test_channel_vectors_are_recognised():
    assert channel_vector_dim(torch.zeros(16, 1, 1)) == 0 and channel_vector_dim(torch.zeros(1, 1, 8)) == 2
    assert channel_vector_dim(torch.zeros(1, 5, 8)) == 2  # a token parameter (position embedding): its last axis
    assert channel_vector_dim(torch.zeros(4, 5, 8)) is None  # no single channel axis


def test_convnext_layer_scales_are_pruned_with_their_channels_and_reload_exactly(tmp_path):
    raw = tiny_recipe(tmp_path, model={"name": FACTORY, "trust_checkpoint": True})
    raw["pipeline"] = [{"train": {"epochs": 1, "batch_size": 32}},
                       {"prune": {"granularity": "channel", "rate": 50, "scope": "layer"}},
                       {"evaluate": {"latency_batch_size": 8, "latency_repeats": 1}}]
    res = compress.run(compress.load_recipe(raw))
    scales = [m.layer_scale for m in res.model.modules() if type(m).__name__ == "CNBlock"]
    assert [s.shape[0] for s in scales] == [8, 16]  # half of 16 and of 32 channels
    rows = res.report.rows
    assert rows[-1].params < rows[0].params and rows[-1].macs < rows[0].macs
    x = res.state.data.test.head(8).x
    loaded = compress.load(res.output, trust_model_code=True)
    assert torch.equal(loaded(x), res.model.cpu().eval()(x))
