"""Reading recipes: defaults, every error at once with dotted paths, suggestions, overrides, hostile files."""
import time

import pytest

from compress import load_recipe
from compress.errors import InputError, RecipeError
from tests.conftest import tiny_recipe
from tests.conftest import write_recipe as write


def test_valid_recipe_has_schema_defaults(tmp_path):
    r = load_recipe(write(tmp_path, tiny_recipe(tmp_path)))
    assert r.pipeline[0].kind == "train" and r.pipeline[0].train.epochs == 2
    assert r.pipeline[1].kind == "evaluate" and r.pipeline[1].evaluate.split == "test"
    assert r.data.download is False and r.constraints.max_accuracy_drop is None


def test_all_errors_reported_at_once_with_dotted_paths(tmp_path):
    raw = tiny_recipe(tmp_path)
    raw["pipeline"] = [{"train": {"epochs": -3, "batch_sise": 32, "lr": "fast"}}]
    with pytest.raises(RecipeError) as info:
        load_recipe(write(tmp_path, raw))
    problems = info.value.problems
    assert "pipeline[0].train.epochs: must be > 0, got -3" in problems
    assert any(p.startswith("pipeline[0].train.batch_sise: unknown key; did you mean 'batch_size'") for p in problems)
    assert any(p.startswith("pipeline[0].train.lr:") and "'fast'" in p for p in problems)
    assert len(problems) == 3


def test_unknown_names_get_suggestions(tmp_path):
    raw = tiny_recipe(tmp_path, model={"name": "lenet-300"}, data={"name": "mnsit"}, device="gpu")
    raw["pipeline"] = [{"trian": {}}, {"train": {"optimizer": "adamm"}}]
    with pytest.raises(RecipeError) as info:
        load_recipe(write(tmp_path, raw))
    text = "\n".join(info.value.problems)
    assert "model.name: unknown model 'lenet-300'; did you mean 'lenet-300-100'?" in text
    assert "data.name: unknown dataset 'mnsit'; did you mean 'mnist'?" in text
    assert "pipeline[0].trian: unknown key; did you mean 'train'?" in text
    assert "pipeline[1].train.optimizer: 'adamm' is not allowed; did you mean 'adam'?" in text
    assert "device: must be auto, cpu, mps, cuda or cuda:N, got 'gpu'" in text


def test_set_overrides_stage_and_top_level(tmp_path):
    r = load_recipe(write(tmp_path, tiny_recipe(tmp_path)),
                    ["train.epochs=5", "data.root=/x", "pipeline[1].evaluate.split=val", "seed=7",
                     "data.val_fraction=0.2"])
    assert r.pipeline[0].train.epochs == 5 and r.data.root == "/x" and r.seed == 7
    assert r.pipeline[1].evaluate.split == "val"


def test_set_errors_are_recipe_errors(tmp_path):
    with pytest.raises(RecipeError) as info:
        load_recipe(write(tmp_path, tiny_recipe(tmp_path)), ["prune.rate=5", "noequals"])
    assert any("no 'prune' stage" in p for p in info.value.problems)
    assert any("expected KEY=VALUE" in p for p in info.value.problems)


def test_stage_must_hold_exactly_one_kind(tmp_path):
    raw = tiny_recipe(tmp_path)
    raw["pipeline"] = [{"train": {}, "evaluate": {}}]
    with pytest.raises(RecipeError, match=r"pipeline\[0\]: a stage holds exactly one of"):
        load_recipe(write(tmp_path, raw))


def test_unreadable_and_non_mapping_recipes(tmp_path):
    with pytest.raises(InputError, match="cannot read recipe"):
        load_recipe(tmp_path / "missing.yaml")
    with pytest.raises(InputError, match="is a directory"):
        load_recipe(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(InputError, match="a recipe is a YAML mapping"):
        load_recipe(bad)
    bad.write_text("model: [unclosed\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load_recipe(bad)


def test_bits_range(tmp_path):
    raw = tiny_recipe(tmp_path)
    raw["pipeline"] = [{"quantize": {"bits": 12}}, {"prune": {"rate": 100}}]
    with pytest.raises(RecipeError) as info:
        load_recipe(write(tmp_path, raw))
    assert "pipeline[0].quantize.bits: must be 1–8 (or 16 for fp16), got 12" in info.value.problems
    assert "pipeline[1].prune.rate: must be < 100.0, got 100" in info.value.problems


def test_binary_and_huge_recipes_are_refused_by_what_they_are(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_bytes(b"model:\x00\xff\xfe binary")
    with pytest.raises(InputError, match="not a text file"):
        load_recipe(path)
    path.write_bytes(b"# " + b"x" * (2 << 20))
    with pytest.raises(InputError, match="larger than"):
        load_recipe(path)


def test_yaml_alias_bomb_is_refused_quickly(tmp_path):
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(levels) + "\nmodel: {name: *a8}\n")
    assert len(path.read_bytes()) < 1000
    start = time.perf_counter()
    with pytest.raises(InputError, match="expands to more than"):
        load_recipe(path)
    assert time.perf_counter() - start < 5


def test_error_messages_cut_long_values(tmp_path):
    raw = tiny_recipe(tmp_path)
    raw["seed"] = "x" * 10_000
    with pytest.raises(RecipeError) as info:
        load_recipe(write(tmp_path, raw))
    assert len(str(info.value)) < 300


def test_non_finite_and_too_large_numbers_are_errors(tmp_path):
    raw = tiny_recipe(tmp_path, seed=2 ** 70)
    raw["pipeline"][0]["train"].update(lr=float("inf"), momentum=float("nan"))
    with pytest.raises(RecipeError) as info:
        load_recipe(write(tmp_path, raw))
    text = "\n".join(info.value.problems)
    assert "train.lr: input should be a finite number" in text and "train.momentum:" in text
    assert "seed: must be <=" in text


def test_one_problem_is_one_line(tmp_path):
    raw = tiny_recipe(tmp_path)
    raw["pipeline"][0]["train"]["epochs"] = 0
    with pytest.raises(RecipeError) as info:
        load_recipe(write(tmp_path, raw))
    assert str(info.value).count("\n") == 0 and "pipeline[0].train.epochs: must be > 0, got 0" in str(info.value)
