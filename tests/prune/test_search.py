"""Budget search: the highest rate inside --max-drop, its trace, and honest failure."""
import json

import pytest
from typer.testing import CliRunner

import compress
from cli.app import app
from tests.conftest import from_checkpoint
from tests.conftest import write_recipe as write

FT = {"epochs": 2, "batch_size": 32, "optimizer": "adamw", "lr": 1e-3}


def _recipe(tmp_path, base, drop: float, **prune) -> dict:
    return from_checkpoint(tmp_path, base, {"prune": {"update_every": 10, "finetune": FT, **prune}},
                           model={"name": "lenet-300-100"}, constraints={"max_accuracy_drop": drop})


def test_search_finds_a_high_rate_inside_the_budget(tmp_path, lenet_base):
    result = compress.run(compress.load_recipe(_recipe(tmp_path, lenet_base, 1.0)))
    report = result.report
    assert report.constraint.met and report.final.accuracy >= report.rows[0].accuracy - 1.0
    phases = [t.phase for t in report.search]
    assert phases[0] == "probe" and "climb" in phases and phases[-1] == "bisect"
    chosen = max(t.rate for t in report.search if t.met and t.phase != "probe")
    probe_best = max(t.rate for t in report.search if t.met and t.phase == "probe")
    assert chosen > probe_best >= 50  # fine-tuning bought sparsity beyond what the probe allowed
    weights = [m.weight for m in result.model if hasattr(m, "weight")]
    zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
    assert zeros == pytest.approx(chosen / 100, abs=0.01)
    assert result.output.name == "model.mzip"


def test_impossible_budget_exits_3_and_writes_the_least_damaged_candidate(tmp_path, lenet_base):
    res = CliRunner().invoke(app, ["prune", "--max-drop", "0", "--min-rate", "97", "--finetune-epochs", "1",
                                   "-r", str(write(tmp_path, _recipe(tmp_path, lenet_base, 0.0))),
                                   "--json", str(tmp_path / "r.json")])
    assert res.exit_code == 3, res.output
    assert "budget search" in res.output and "VIOLATED" in res.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["output"] == str(tmp_path / "out" / "prune" / "model.over-budget.mzip")  # the command's folder
    assert not (tmp_path / "out" / "prune" / "model.mzip").exists()
    assert compress.load(report["output"]) is not None
    rates = [t["rate"] for t in report["search"]]
    assert min(rates) >= 97 and not any(t["met"] for t in report["search"])


def test_no_rate_without_budget_is_a_clear_error(tmp_path, lenet_base):
    raw = _recipe(tmp_path, lenet_base, 1.0)
    raw.pop("constraints")
    with pytest.raises(compress.errors.RecipeError, match="no rate given") as info:
        compress.load_recipe(raw)
    assert "--max-drop" in str(info.value)
