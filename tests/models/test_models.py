import pytest
import torch
import torch.nn as nn
from safetensors.torch import save_file

from compress.errors import CheckpointError
from compress.models import MODELS, build_model, fit_to_shapes, load_state, read_checkpoint


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_builtin_parameter_counts():
    assert n_params(MODELS.get("lenet-300-100")()) == 266_610
    assert n_params(MODELS.get("lenet-5")()) == 431_080
    assert MODELS.get("mnist-cnn")()[7].in_features == 1600


@pytest.mark.parametrize("name,shape", [("mnist-cnn", (2, 1, 28, 28)), ("lenet-5", (2, 1, 28, 28)),
                                        ("lenet-300-100", (2, 1, 28, 28)), ("resnet20", (2, 3, 32, 32))])
def test_forward_shapes(name, shape):
    assert build_model(name, {})(torch.randn(shape)).shape == (2, 10)


def test_torchvision_and_import_path_models():
    assert build_model("torchvision:resnet18", {"num_classes": 3}).eval()(torch.randn(1, 3, 32, 32)).shape == (1, 3)
    assert isinstance(build_model("torch.nn:Identity", {}), nn.Identity)


def test_state_dict_checkpoints_load(tmp_path):
    model = build_model("lenet-300-100", {})
    torch.save(model.state_dict(), tmp_path / "m.pt")
    save_file(model.state_dict(), tmp_path / "m.safetensors")
    for name in ("m.pt", "m.safetensors"):
        fresh = build_model("lenet-300-100", {})
        load_state(fresh, read_checkpoint(tmp_path / name), name)
        assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values()))


def test_pickled_module_needs_trust(tmp_path):
    torch.save(build_model("lenet-300-100", {}), tmp_path / "full.pt")
    with pytest.raises(CheckpointError, match="--trust-checkpoint"):
        read_checkpoint(tmp_path / "full.pt")
    assert isinstance(read_checkpoint(tmp_path / "full.pt", trust=True), nn.Module)


def test_mismatch_lists_keys_and_shapes():
    state = build_model("lenet-300-100", {}).state_dict()
    state["extra.weight"] = torch.zeros(1)
    del state["1.bias"]
    state["3.weight"] = torch.zeros(5, 5)
    with pytest.raises(CheckpointError) as info:
        load_state(build_model("lenet-300-100", {}), state, "ck.pt")
    text = str(info.value)
    assert "missing keys: 1.bias" in text and "unexpected keys: extra.weight" in text
    assert "3.weight: checkpoint (5, 5) vs model (100, 300)" in text


def test_fit_to_shapes_rebuilds_a_narrower_resnet():
    model = build_model("resnet20", {})
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    shapes["conv1.weight"] = (8, 3, 3, 3)
    for k in ("bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var"):
        shapes[k] = (8,)
    shapes["layers.0.conv1.weight"] = (16, 8, 3, 3)
    shapes["layers.0.conv2.weight"] = (16, 16, 3, 3)
    fit_to_shapes(model, shapes)
    assert model.conv1.out_channels == 8 and model.bn1.num_features == 8
    assert model.layers[0].conv1.in_channels == 8


def test_a_factory_beside_the_recipe_is_importable_from_the_current_folder(tmp_path, monkeypatch):
    import sys

    (tmp_path / "my_nets_for_test.py").write_text(
        "import torch.nn as nn\n"
        "def tiny(num_classes=10, in_channels=1):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 28 * 28, num_classes))\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    model = build_model("my_nets_for_test:tiny", {"num_classes": 3})
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 3)
    assert str(tmp_path) not in sys.path  # only while importing
