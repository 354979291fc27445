"""Every shipped recipe validates (and the built-in quick start is the one in configs/)."""
from pathlib import Path

import pytest

from cli.common import builtin_recipe_path
from compress.recipe import load_recipe

CONFIGS = sorted(Path(__file__).parent.parent.joinpath("configs").glob("*.yaml"))


def test_configs_exist():
    assert any(p.name == "quickstart.yaml" for p in CONFIGS)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_config_validates(path):
    recipe = load_recipe(path)
    assert recipe.pipeline


def test_builtin_is_the_quickstart():
    assert builtin_recipe_path().read_text() == Path("configs/quickstart.yaml").read_text()
