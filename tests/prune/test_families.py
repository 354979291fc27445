"""Channel pruning of the transformer and shuffled families (torchvision's ViT, Swin v1/v2, ShuffleNet v2) at
tiny width: the prunable layers lose channels, what cannot change keeps its width, the classifier keeps its
outputs, and the pruned network reloads bit-exactly. MaxViT is refused before any training."""
import pytest
import torch
from torch import nn

import compress
from compress.errors import UnsupportedError
from tests.conftest import tiny_recipe


def tiny_vit(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    from torchvision.models.vision_transformer import VisionTransformer

    model = VisionTransformer(image_size=28, patch_size=7, num_layers=2, num_heads=4, hidden_dim=32, mlp_dim=64,
                              num_classes=num_classes)
    model.conv_proj = nn.Conv2d(in_channels, 32, kernel_size=7, stride=7)
    return model


def _swin(version: int, num_classes: int, in_channels: int) -> nn.Module:
    from torchvision.models import swin_transformer as st

    block = st.SwinTransformerBlock if version == 1 else st.SwinTransformerBlockV2
    merge = st.PatchMerging if version == 1 else st.PatchMergingV2
    model = st.SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[1, 1], num_heads=[2, 4], window_size=[4, 4],
                               num_classes=num_classes, block=block, downsample_layer=merge)
    model.features[0][0] = nn.Conv2d(in_channels, 16, kernel_size=4, stride=4)
    return model


def tiny_swin(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    return _swin(1, num_classes, in_channels)


def tiny_swin_v2(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    return _swin(2, num_classes, in_channels)


def tiny_shufflenet(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    from torchvision.models.shufflenetv2 import ShuffleNetV2

    model = ShuffleNetV2([2, 2, 2], [8, 16, 32, 64, 128], num_classes=num_classes)
    model.conv1[0] = nn.Conv2d(in_channels, 8, 3, 2, 1, bias=False)
    return model


def tiny_maxvit(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    from torchvision.models.maxvit import MaxVit

    model = MaxVit(input_size=(28, 28), stem_channels=8, partition_size=7, block_channels=[16], block_layers=[1],
                   head_dim=4, stochastic_depth_prob=0.0, num_classes=num_classes)
    model.stem[0][0] = nn.Conv2d(in_channels, 8, 3, 2, 1, bias=False)
    return model


def _prune(tmp_path, factory: str, rate: int = 50):
    raw = tiny_recipe(tmp_path, model={"name": f"tests.prune.test_families:{factory}", "trust_checkpoint": True})
    raw["pipeline"] = [{"train": {"epochs": 1, "batch_size": 32, "optimizer": "adamw", "lr": 0.002}},
                       {"prune": {"granularity": "channel", "rate": rate, "scope": "layer"}},
                       {"evaluate": {"latency_batch_size": 8, "latency_repeats": 1}}]
    res = compress.run(compress.load_recipe(raw))
    x = res.state.data.test.head(8).x
    model = res.model.cpu().eval()
    loaded = compress.load(res.output, trust_model_code=True)
    assert torch.equal(loaded(x), model(x)) and model(x).shape == (8, 10)
    rows = res.report.rows
    assert rows[-1].params < rows[0].params
    return res, model


def test_vit_loses_stream_and_mlp_channels_in_whole_heads(tmp_path):
    _, model = _prune(tmp_path, "tiny_vit")
    attn = [m for m in model.modules() if isinstance(m, nn.MultiheadAttention)]
    assert {a.embed_dim for a in attn} == {16} and all(a.head_dim * a.num_heads == 16 for a in attn)
    assert model.hidden_dim == 16 and model.class_token.shape == (1, 1, 16)
    assert model.encoder.pos_embedding.shape == (1, 17, 16)
    assert [blk.mlp[0].out_features for blk in model.encoder.layers] == [32, 32]


def test_vit_stream_width_stays_a_multiple_of_the_heads(tmp_path):
    _, model = _prune(tmp_path, "tiny_vit", rate=30)  # 30 % of 32 is 9.6: the stream keeps 24 (6 per head)
    assert {m.embed_dim for m in model.modules() if isinstance(m, nn.MultiheadAttention)} == {24}


@pytest.mark.parametrize("factory", ["tiny_swin", "tiny_swin_v2"])
def test_swin_prunes_mlps_and_keeps_windowed_attention_whole(tmp_path, factory):
    res, model = _prune(tmp_path, factory)
    assert [b.mlp[0].out_features for b in (model.features[1][0], model.features[3][0])] == [32, 64]
    assert model.features[1][0].attn.qkv.weight.shape == (48, 16)  # the residual stream keeps its width
    assert any("kept at full width: features.1.0.attn" in n for n in res.report.notes)


def test_shufflenet_prunes_branch_interiors_and_keeps_shuffled_streams(tmp_path):
    _, model = _prune(tmp_path, "tiny_shufflenet")
    block = model.stage3[1]
    assert block.branch2[0].out_channels == 8 and block.branch2[3].out_channels == 8  # 16 → 8 inside the branch
    assert block.branch2[5].out_channels == 16  # writes into the shuffled stream: kept


def test_maxvit_is_refused_before_training(tmp_path):
    raw = tiny_recipe(tmp_path, model={"name": "tests.prune.test_families:tiny_maxvit", "trust_checkpoint": True})
    raw["pipeline"] = [{"train": {"epochs": 50}}, {"prune": {"granularity": "channel", "rate": 50}}]
    with pytest.raises(UnsupportedError, match="PartitionAttentionLayer.*window partitions"):
        compress.run(compress.load_recipe(raw))
