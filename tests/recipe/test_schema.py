"""What the schema checks across sections, before anything runs: stage order, missing amounts,
options a method does not have, splits that do not exist, int8 off the CPU."""
import pytest

from compress import load_recipe
from compress.errors import RecipeError
from compress.recipe import ChannelPrune, KMeansQuantize, LinearQuantize, Stage, UnstructuredPrune


def problems(pipeline, **over) -> list[str]:
    raw = {"model": {"name": "mnist-cnn"}, "pipeline": pipeline, **over}
    with pytest.raises(RecipeError) as info:
        load_recipe(raw)
    return info.value.problems


def test_the_method_class_follows_the_discriminator():
    r = load_recipe({"model": {"name": "mnist-cnn"}, "pipeline": [
        {"prune": {"rate": 50}}, {"quantize": {"bits": 4, "method": "kmeans"}}]})
    assert isinstance(r.pipeline[0].prune, UnstructuredPrune) and isinstance(r.pipeline[1].quantize, KMeansQuantize)
    r = load_recipe({"model": {"name": "mnist-cnn"}, "pipeline": [
        {"prune": {"rate": 50, "granularity": "channel"}}, {"quantize": {"bits": 4}}]})
    assert isinstance(r.pipeline[0].prune, ChannelPrune) and isinstance(r.pipeline[1].quantize, LinearQuantize)
    assert Stage.of(LinearQuantize(bits=3)).quantize.bits == 3


def test_options_of_another_method_are_named_as_such():
    found = problems([{"prune": {"rate": 50, "granularity": "channel", "schedule": "gradual", "ramp": 0.5}},
                      {"quantize": {"bits": 2, "method": "kmeans", "symmetric": False}}])
    assert "pipeline[0].prune.schedule: 'gradual' is not allowed; choose from: iterative, oneshot" in found
    assert "pipeline[0].prune.ramp: not an option of granularity 'channel' (only of 'unstructured')" in found
    assert "pipeline[1].quantize.symmetric: not an option of method 'kmeans' (only of 'linear')" in found


def test_unknown_method_names_get_suggestions():
    found = problems([{"prune": {"rate": 50, "granularity": "chanel"}}, {"quantize": {"bits": 4, "method": "kmean"}}])
    assert "pipeline[0].prune.granularity: 'chanel' is not allowed; did you mean 'channel'?" in found
    assert "pipeline[1].quantize.method: 'kmean' is not allowed; did you mean 'kmeans'?" in found


def test_stage_order_preconditions():
    found = problems([{"quantize": {"bits": 2, "method": "kmeans"}}, {"prune": {"rate": 50}},
                      {"prune": {"rate": 50, "granularity": "channel"}}, {"quantize": {"bits": 4}}])
    assert any(p.startswith("pipeline[1].prune: pruning after k-means quantization") for p in found)
    assert any(p.startswith("pipeline[2].prune: channel pruning after unstructured pruning or quantization")
               for p in found)
    assert any(p.startswith("pipeline[3].quantize: a second quantize stage") for p in found)


def test_missing_amounts_unless_a_budget_searches():
    found = problems([{"prune": {}}, {"quantize": {}}, {"prune": {"granularity": "channel"}}])
    assert any(p.startswith("pipeline[0].prune: no rate given") for p in found)
    assert any(p.startswith("pipeline[1].quantize: no bit width given") for p in found)
    assert any(p.startswith("pipeline[2].prune: no rate given: pass --rate R (percent of channels)") for p in found)
    load_recipe({"model": {"name": "mnist-cnn"}, "pipeline": [{"prune": {}}, {"quantize": {}}],
                 "constraints": {"max_accuracy_drop": 1.0}})


def test_layer_bits_and_one_bit_symmetric_grids():
    found = problems([{"quantize": {"bits": 4, "layer_bits": {"0": 9}}}, {"quantize": {"bits": 1}}])
    assert "pipeline[0].quantize.layer_bits: bit widths [9] are out of range; use 1–8, or 16 for fp16" in found
    assert any(p.startswith("pipeline[1].quantize: symmetric linear quantization needs ≥ 2 bits") for p in found)


def test_splits_distillation_and_int8_device():
    found = problems([{"finetune": {"distill": 0.5}}, {"quantize": {"bits": 4, "execute": "int8"}},
                      {"evaluate": {"split": "val"}}], device="cuda")
    assert any(p.startswith("pipeline[0].finetune.distill: distillation needs the uncompressed model") for p in found)
    assert any(p.startswith("pipeline[1].quantize.execute: int8 runs CPU integer kernels") for p in found)
    assert "pipeline[2].evaluate.split: there is no validation split; set data.val_fraction above 0" in found
