"""Pretrained torchvision weights from a hub cache the tests fill themselves (nothing is downloaded)."""
from __future__ import annotations

import urllib.error
import urllib.request

import pytest
import torch

from compress.errors import InputError
from compress.models import pretrained
from compress.recipe.base import ModelConfig

ARCH = "squeezenet1_1"  # 1.2 M parameters, a 1×1 convolution as its head


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A torch hub cache holding seeded 'pretrained' weights for ARCH; any download attempt fails the test."""
    import torchvision.models as tvm

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    torch.manual_seed(123)
    state = tvm.get_model(ARCH).state_dict()
    path = pretrained.cache_file(tvm.get_model_weights(ARCH).DEFAULT.url)
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    return state


def test_weights_from_the_cache_with_a_new_head_rebuild_from_plain_kwargs(hub):
    model, kwargs = pretrained.build(ModelConfig(name=f"torchvision:{ARCH}", weights="DEFAULT"), 7)
    assert kwargs == {"num_classes": 7}
    own = model.state_dict()
    assert own["classifier.1.weight"].shape[0] == 7  # the head, fresh
    assert all(torch.equal(own[k], v) for k, v in hub.items() if not k.startswith("classifier.1."))


def test_keep_uses_the_weights_head_and_refuses_more_classes(hub):
    model, kwargs = pretrained.build(ModelConfig(name=f"torchvision:{ARCH}", weights="IMAGENET1K_V1", head="keep"), 10)
    assert kwargs == {} and torch.equal(model.state_dict()["classifier.1.weight"], hub["classifier.1.weight"])
    with pytest.raises(InputError, match="data has 1001 classes and the weights' head 1000"):
        pretrained.build(ModelConfig(name=f"torchvision:{ARCH}", weights="DEFAULT", head="keep"), 1001)


def test_missing_weights_offline_name_the_path_and_the_source(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda *a, **k: (_ for _ in ()).throw(urllib.error.URLError("offline")))
    with pytest.raises(InputError) as info:
        pretrained.build(ModelConfig(name="torchvision:resnet18", weights="DEFAULT"), 10)
    path = tmp_path / "empty" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert str(path) in info.value.message and "download.pytorch.org" in info.value.message
    assert "offline" in info.value.message and str(path) in (info.value.hint or "")


def test_unknown_weights_and_non_torchvision_models_are_refused():
    with pytest.raises(InputError, match="has no weights 'IMAGENET9K'.*"):
        pretrained.preprocess(ModelConfig(name="torchvision:resnet18", weights="IMAGENET9K"))
    with pytest.raises(InputError, match="are for torchvision:<name> and timm:<name> models"):
        pretrained.preprocess(ModelConfig(name="mnist-cnn", weights="DEFAULT"))


def test_preprocessing_is_the_weights_own():
    p = pretrained.preprocess(ModelConfig(name="torchvision:efficientnet_b1", weights="IMAGENET1K_V2"))
    assert (p.crop, p.resize, p.mean) == (240, 255, (0.485, 0.456, 0.406))


def test_a_pretrained_run_reloads_from_plain_kwargs_and_never_downloads(hub, tmp_path):
    import compress
    from tests.data.test_stream import _folder

    root = _folder(tmp_path / "imgs", {"train": {"a": 3, "b": 3}, "val": {"a": 2, "b": 2}})
    raw = {"model": {"name": f"torchvision:{ARCH}", "weights": "DEFAULT"},
           "data": {"name": "imagefolder", "root": str(root)},
           "pipeline": [{"finetune": {"epochs": 1, "batch_size": 6}},
                        {"evaluate": {"latency_batch_size": 2, "latency_repeats": 1}}],  # every row's latency
           "output": str(tmp_path / "out"), "device": "cpu"}
    res = compress.run(compress.load_recipe(raw))
    assert res.report.rows[0].stage == "pretrained" and res.state.data.input_shape == (3, 224, 224)
    x = res.state.data.test.head(4).x
    assert torch.equal(compress.load(res.output)(x), res.model.cpu().eval()(x))
