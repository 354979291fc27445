"""Every shipped recipe validates (and the built-in quick start is the one in configs/)."""
from pathlib import Path

import pytest

import yaml
from typer.testing import CliRunner

from cli.app import app
from cli.common import builtin_recipe_path
from compress import load_recipe

CONFIGS = sorted(Path(__file__).parent.parent.joinpath("configs").glob("*.yaml"))


def test_configs_exist():
    assert any(p.name == "quickstart.yaml" for p in CONFIGS)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_config_validates_with_its_own_stages(path):
    res = CliRunner().invoke(app, ["validate", str(path)])
    assert res.exit_code == 0, res.output
    raw = yaml.safe_load(path.read_text())
    kinds = [next(iter(s)) if isinstance(s, dict) else s for s in raw["pipeline"]]
    assert f"{raw['model']['name']} on {raw['data']['name']}: {' → '.join(kinds)}" in res.stdout


def test_builtin_is_the_quickstart():
    assert builtin_recipe_path().read_text() == Path("configs/quickstart.yaml").read_text()


@pytest.mark.parametrize("name", ["deep_compression_lenet300", "deep_compression_lenet5"])
def test_deep_compression_recipes_run_end_to_end_on_tiny_mnist(tmp_path, name):
    import torch

    import compress
    from compress import artifact
    from tests.conftest import write_idx

    root = write_idx(tmp_path / "data", n_train=256, n_test=64)
    recipe = load_recipe(Path("configs") / f"{name}.yaml", overrides=[
        f"data.root={root}", f"output={tmp_path / 'out'}", "device=cpu", "train.epochs=1",
        "prune.finetune.epochs=1", "prune.update_every=1", "finetune.epochs=1"])
    result = compress.run(recipe)
    rate = recipe.pipeline[1].prune.rate
    weights = [m.weight for m in result.model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
    assert zeros == pytest.approx(rate / 100, abs=0.005)
    assert all(torch.unique(w[w != 0]).numel() <= 32 for w in weights)  # 5-bit shared values
    art = artifact.read(result.output)
    assert any(m["enc"] == "codebook" and ("nnz" in m or m.get("z") == "ctx") for m in art.manifest["tensors"].values())
    assert result.report.final.ratio > 30
    reloaded = compress.load(result.output)
    x = torch.randn(4, 1, 28, 28)
    assert torch.equal(reloaded(x), result.model.cpu().eval()(x))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["beyond_lenet300", "beyond_lenet5"])
def test_beyond_recipes_run_end_to_end_on_tiny_mnist(tmp_path, name):
    import torch

    import compress
    from tests.conftest import write_idx

    root = write_idx(tmp_path / "data", n_train=256, n_test=64)
    recipe = load_recipe(Path("configs") / f"{name}.yaml", overrides=[
        f"data.root={root}", f"output={tmp_path / 'out'}", "device=cpu", "train.epochs=1",
        "prune.finetune.epochs=2", "finetune.epochs=1"])
    result = compress.run(recipe)
    assert [r.split for r in result.report.rows] == ["test"] * len(result.report.rows)  # its last stage's split
    assert "variational dropout" in " ".join(result.report.notes)
    weights = [m.weight for m in result.model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    assert all(torch.unique(w[w != 0]).numel() <= 2 ** recipe.pipeline[3].quantize.bits for w in weights)
    for name_, b in result.model.named_parameters():
        if name_.endswith("bias"):
            assert result.state.grids[name_].bits == 8
    reloaded = compress.load(result.output)
    x = torch.randn(4, 1, 28, 28)
    assert torch.equal(reloaded(x), result.model.cpu().eval()(x))
