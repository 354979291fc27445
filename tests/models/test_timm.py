"""timm models (the optional extra): names, pretrained weights from a file or the hub's cache, offline errors."""
from __future__ import annotations

import pytest
import torch

from compress.errors import InputError
from compress.models import build_model, pretrained
from compress.models.build import check_model_name, untrusted_reason
from compress.recipe.base import ModelConfig

timm = pytest.importorskip("timm")
ARCH = "test_resnet"  # timm's own tiny test network (0.4 M parameters), weights tag r160_in1k


@pytest.fixture
def weights_file(tmp_path):
    torch.manual_seed(5)
    path = tmp_path / "w.pth"
    torch.save(timm.create_model(ARCH).state_dict(), path)
    return path


def test_names_and_trust():
    check_model_name(f"timm:{ARCH}")
    with pytest.raises(ValueError, match="unknown timm model 'test_resnett'; did you mean 'test_resnet'"):
        check_model_name("timm:test_resnett")
    assert untrusted_reason(f"timm:{ARCH}", {"num_classes": 10}) is None  # plain kwargs: safe to rebuild
    assert "download" in untrusted_reason(f"timm:{ARCH}", {"pretrained": True})
    assert untrusted_reason(f"timm:{ARCH}", {"checkpoint_path": "/etc/x"}) is not None
    assert build_model(f"timm:{ARCH}", {"num_classes": 3, "in_chans": 1})(torch.randn(2, 1, 32, 32)).shape == (2, 3)


def test_weights_file_with_timms_own_new_head(weights_file):
    cfg = ModelConfig(name=f"timm:{ARCH}", weights=str(weights_file))
    model, kwargs = pretrained.build(cfg, 7)
    assert kwargs == {"num_classes": 7} and model.num_classes == 7
    saved, own = torch.load(weights_file), model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in saved.items() if not k.startswith("fc."))
    assert pretrained.preprocess(cfg).crop == 160 and pretrained.preprocess(cfg).resize == 168  # 160 / 0.95


def test_unknown_tags_and_offline_hub_are_one_clear_error(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="timm has no weights 'in22k' for test_resnet") as info:
        pretrained.preprocess(ModelConfig(name=f"timm:{ARCH}", weights="in22k"))
    assert "r160_in1k" in (info.value.hint or "")
    import huggingface_hub.constants as hf

    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(InputError, match=r"cannot load timm weights timm/test_resnet\.r160_in1k"):
        pretrained.build(ModelConfig(name=f"timm:{ARCH}", weights="DEFAULT"), 10)


def test_a_timm_run_reloads_exactly_from_plain_kwargs(weights_file, tmp_path):
    import compress
    from tests.data.test_stream import _folder

    root = _folder(tmp_path / "imgs", {"train": {"a": 3, "b": 3}, "val": {"a": 2, "b": 2}})
    raw = {"model": {"name": f"timm:{ARCH}", "weights": str(weights_file)},
           "data": {"name": "imagefolder", "root": str(root)},
           "pipeline": [{"finetune": {"epochs": 1, "batch_size": 6}}, {"prune": {"rate": 50}},
                        {"evaluate": {"latency_batch_size": 2, "latency_repeats": 1}}],
           "output": str(tmp_path / "out"), "device": "cpu"}
    res = compress.run(compress.load_recipe(raw))
    assert res.report.rows[0].stage == "pretrained" and res.state.data.input_shape == (3, 160, 160)
    x = res.state.data.test.head(4).x
    assert torch.equal(compress.load(res.output)(x), res.model.cpu().eval()(x))


def test_with_a_checkpoint_a_weights_file_only_names_the_preprocessing(tmp_path):
    gone = str(tmp_path / "moved-away.pth")
    with pytest.raises(Exception, match="does not exist"):
        pretrained.preprocess(ModelConfig(name=f"timm:{ARCH}", weights=gone))
    p = pretrained.preprocess(ModelConfig(name=f"timm:{ARCH}", weights=gone, checkpoint="model.mzip"))
    assert p.crop == 160
    assert pretrained.preprocess(ModelConfig(name="torchvision:resnet18", weights=gone, checkpoint="m.mzip")).crop == 224
