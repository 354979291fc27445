"""Quantization under an accuracy budget, sensitivity-allocated bits, and the joint search's budget split."""
import json

import pytest
import torch
from typer.testing import CliRunner

import compress
from cli.app import app
from compress.budget import Budget, stage_budget
from tests.conftest import from_checkpoint, tiny_recipe


@pytest.fixture
def base(lenet_base):
    return lenet_base  # fully connected: its scans cost milliseconds


def _quantize(tmp_path, base, *args):
    out = tmp_path / "q"
    res = CliRunner().invoke(app, ["quantize", "--checkpoint", str(base), "--device", "cpu", "--output", str(out),
                                   "--finetune-epochs", "0", "--json", str(tmp_path / "r.json"), *args])
    return res, json.loads((tmp_path / "r.json").read_text()) if (tmp_path / "r.json").exists() else None


def test_max_drop_without_bits_searches_the_fewest_bits_per_layer(tmp_path, base):
    res, report = _quantize(tmp_path, base, "--max-drop", "1.0")
    assert res.exit_code == 0, res.output
    assert "budget search" in res.output and "mean bits" in res.output
    trials = report["search"]
    assert trials[0]["phase"] == "scan" and {t["phase"] for t in trials[1:]} == {"bits"}
    chosen = [t for t in trials[1:] if t["met"]]
    assert chosen and min(t["bits"] for t in chosen) < 8
    assert report["rows"][-1]["accuracy"] >= report["rows"][0]["accuracy"] - 1.0
    bits = {layer["name"]: layer["bits"] for layer in report["layers"]}
    assert all(1 <= b <= 8 for b in bits.values())
    art = compress.load(report["output"])  # the stored weights sit on the chosen grids
    assert art is not None


def test_when_not_even_8_bits_fit_the_budget_fp16_is_kept(base):
    from compress.data import load_dataset
    from compress.method import Outcome, Workspace
    from compress.quantize import linear
    from compress.quantize.bits import search_bits
    from compress.recipe import DataConfig, LinearQuantize

    model = compress.load(base)
    ws = Workspace(load_dataset(DataConfig(name="digits")), compress_ctx(), 1000)
    params = {n: p for n, p in model.named_parameters() if n.endswith("weight")}
    before = {n: p.detach().clone() for n, p in params.items()}
    out = Outcome()
    cfg = LinearQuantize()
    bits = search_bits(model, ws, params, {}, linear.projection(cfg), linear.widths(cfg), Budget(100.1, "test"), out)
    assert set(bits.values()) == {16}
    assert "kept fp16" in out.notes[-1]
    assert all(torch.equal(before[n], p) for n, p in params.items())  # trials left the weights as they were


def compress_ctx():
    from compress.context import RunContext

    return RunContext(torch.device("cpu"), 0)


def test_sensitivity_allocation_meets_the_mean_bits(tmp_path, base):
    res, report = _quantize(tmp_path, base, "--bits", "3", "--allocation", "sensitivity")
    assert res.exit_code == 0, res.output
    layers = report["layers"]
    mean = sum(x["bits"] * x["params_before"] for x in layers) / sum(x["params_before"] for x in layers)
    assert mean <= 3.0 and len({x["bits"] for x in layers}) > 1
    assert "sensitivity allocation" in " ".join(report["notes"])


def test_joint_search_gives_the_prune_search_its_share_of_the_budget(tmp_path):
    raw = tiny_recipe(tmp_path, constraints={"max_accuracy_drop": 1.0, "prune_share": 0.25})
    raw["pipeline"] = [{"prune": {}}, {"quantize": {}}, "evaluate"]
    recipe = compress.load_recipe(raw)
    assert stage_budget(recipe, 0, 90.0, "test").floor == pytest.approx(89.75)
    assert stage_budget(recipe, 1, 90.0, "test").floor == pytest.approx(89.0)
    raw["pipeline"][0] = {"prune": {"rate": 50}}  # only one stage searches: it gets the whole budget
    assert stage_budget(compress.load_recipe(raw), 1, 90.0, "test") == Budget(89.0, "test")


def test_joint_search_runs_both_stages_under_run(tmp_path, base):
    raw = from_checkpoint(tmp_path, base, {"prune": {"update_every": 5, "finetune": {"epochs": 1, "batch_size": 32}}},
                          {"quantize": {}}, constraints={"max_accuracy_drop": 1.5})
    result = compress.run(compress.load_recipe(raw))
    phases = [t.phase for t in result.report.search]
    assert phases[0] == "probe" and "bits" in phases
    assert result.report.constraint.met
    assert result.report.final.nonzero < 0.9 * result.report.rows[0].nonzero
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
