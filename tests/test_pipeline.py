"""The pipeline's own promises: rows comparable with each other, the recipe stored in the file."""
import compress
from compress import artifact
from compress.recipe.schema import Recipe
from tests.conftest import from_checkpoint


def test_every_row_is_measured_on_the_split_the_recipe_evaluates_on(tmp_path, cnn_base):
    data = {"name": "digits", "val_fraction": 0.2}
    raw = from_checkpoint(tmp_path, cnn_base, {"quantize": {"bits": 4}}, data=data)
    raw["pipeline"][-1] = {"evaluate": {"split": "val"}}
    rows = compress.run(compress.load_recipe(raw)).report.rows
    assert [r.split for r in rows] == ["val", "val"]  # the baseline too: Δ compares like with like
    raw = from_checkpoint(tmp_path / "t", cnn_base, {"quantize": {"bits": 4}}, data=data)
    assert [r.split for r in compress.run(compress.load_recipe(raw)).report.rows] == ["test", "test"]


def test_the_stored_recipe_is_the_recipe_as_written_and_loads_back_to_the_same_recipe(tmp_path, cnn_base):
    raw = from_checkpoint(tmp_path, cnn_base, {"quantize": {"bits": 4, "method": "kmeans"}},
                          {"finetune": {"epochs": 1}})
    prune = Recipe(**{**raw, "pipeline": [{"prune": {"rate": 30}}]})  # the default granularity, kept too
    assert prune.as_written()["pipeline"] == [{"prune": {"rate": 30.0, "granularity": "unstructured"}}]
    recipe = compress.load_recipe(raw)
    result = compress.run(recipe)
    stored = artifact.read_header(result.output).manifest["recipe"]
    assert stored["pipeline"][0] == {"quantize": {"bits": 4, "method": "kmeans"}}  # no defaults, no empty stages
    assert stored["pipeline"][1] == {"finetune": {"epochs": 1}}
    assert "latency_repeats" not in str(stored) and Recipe(**stored) == recipe
