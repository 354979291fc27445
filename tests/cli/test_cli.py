"""The CLI end to end through Typer's CliRunner: outputs, JSON, exit codes, error text."""
import json
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cli.app import app
from tests.conftest import tiny_recipe

runner = CliRunner()


def write(tmp_path: Path, raw: dict, name: str = "r.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One quick run shared by the tests that need an artifact."""
    tmp = tmp_path_factory.mktemp("run")
    recipe = write(tmp, tiny_recipe(tmp))
    res = runner.invoke(app, ["run", str(recipe), "--json", str(tmp / "r.json"), "-q"])
    assert res.exit_code == 0, res.output
    return tmp, recipe, json.loads((tmp / "r.json").read_text())


def test_run_writes_artifact_and_json(trained):
    tmp, _, report = trained
    final = report["rows"][-1]
    assert final["accuracy"] > 90.0
    assert Path(report["output"]).stat().st_size == final["size_bytes"]
    assert report["fp32_bytes"] > 0 and final["ratio"] == pytest.approx(report["fp32_bytes"] / final["size_bytes"], rel=1e-3)
    assert final["params"] == final["nonzero"] == 179_926


def test_eval_reproduces_reported_accuracy(trained):
    tmp, recipe, report = trained
    res = runner.invoke(app, ["eval", report["output"], "-r", str(recipe), "--json", "-", "-q"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout[res.stdout.index("{"):])
    assert out["rows"][0]["accuracy"] == report["rows"][-1]["accuracy"]


def test_inspect_shows_tensors_and_report(trained):
    _, _, report = trained
    res = runner.invoke(app, ["inspect", report["output"]])
    assert res.exit_code == 0, res.output
    assert "7.weight" in res.stdout and "100×1600" in res.stdout and "train*" in res.stdout


def test_bad_recipe_exit_2_all_errors_no_traceback(tmp_path):
    raw = tiny_recipe(tmp_path)
    raw["pipeline"] = [{"train": {"epochs": -3, "optimiser": "adam", "batch_size": "big"}}]
    res = runner.invoke(app, ["run", str(write(tmp_path, raw))])
    assert res.exit_code == 2
    assert "pipeline[0].train.epochs: must be > 0, got -3" in res.output
    assert "pipeline[0].train.optimiser: unknown key; did you mean 'optimizer'?" in res.output
    assert "pipeline[0].train.batch_size:" in res.output
    assert "Traceback" not in res.output


def test_validate_ok_and_missing_file(tmp_path):
    res = runner.invoke(app, ["validate", str(write(tmp_path, tiny_recipe(tmp_path)))])
    assert res.exit_code == 0 and "ok" in res.stdout
    res = runner.invoke(app, ["validate", str(tmp_path / "nope.yaml")])
    assert res.exit_code == 2 and "cannot read recipe" in res.output


def test_constraint_violation_exits_3_and_still_writes(tmp_path):
    raw = tiny_recipe(tmp_path, constraints={"max_accuracy_drop": 0.1})
    raw["pipeline"] = [{"train": {"epochs": 1}}, {"finetune": {"epochs": 1, "optimizer": "sgd", "lr": 50.0}}]
    res = runner.invoke(app, ["run", str(write(tmp_path, raw)), "-q", "--json", str(tmp_path / "r.json")])
    assert res.exit_code == 3, res.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["constraint"]["met"] is False and Path(report["output"]).is_file()
    assert Path(report["output"]).name == "model.over-budget.mzip" and "VIOLATED" in res.output


def test_untrusted_pickle_refused_with_exit_2(tmp_path):
    import torch

    from compress.models import build_model

    torch.save(build_model("mnist-cnn", {}), tmp_path / "full.pt")
    res = runner.invoke(app, ["eval", str(tmp_path / "full.pt"), "-r", str(write(tmp_path, tiny_recipe(tmp_path)))])
    assert res.exit_code == 2 and "--trust-checkpoint" in res.output and "Traceback" not in res.output


def test_never_overwrites_input(tmp_path, trained):
    _, recipe, report = trained
    out_dir = Path(report["output"]).parent
    res = runner.invoke(app, ["run", str(recipe), "-c", report["output"], "-o", str(out_dir), "-q"])
    assert res.exit_code == 2 and "never overwrites" in res.output


def test_debug_shows_traceback(tmp_path):
    res = runner.invoke(app, ["--debug", "validate", str(tmp_path / "nope.yaml")])
    assert res.exit_code == 2 and "Traceback" in res.output


def test_init_writes_valid_starter_and_refuses_overwrite(tmp_path):
    path = tmp_path / "modelzip.yaml"
    assert runner.invoke(app, ["init", str(path)]).exit_code == 0
    assert runner.invoke(app, ["validate", str(path)]).exit_code == 0
    res = runner.invoke(app, ["init", str(path)])
    assert res.exit_code == 2 and "already exists" in res.output


def test_bad_set_and_device(tmp_path):
    recipe = str(write(tmp_path, tiny_recipe(tmp_path)))
    res = runner.invoke(app, ["run", recipe, "--set", "train.epochz=2", "--device", "tpu"])
    assert res.exit_code == 2
    assert "epochz: unknown key; did you mean 'epochs'?" in res.output and "device: must be" in res.output


def test_quantize_command_end_to_end(tmp_path):
    recipe = str(write(tmp_path, tiny_recipe(tmp_path)))
    res = runner.invoke(app, ["quantize", "--bits", "4", "-r", recipe, "--finetune-epochs", "1",
                              "--json", str(tmp_path / "q.json")])
    assert res.exit_code == 0, res.output
    assert "per layer" in res.output and "quantized 4 weight tensors to 4 bits" in res.output
    report = json.loads((tmp_path / "q.json").read_text())
    rows = report["rows"]
    assert [r["stage"] for r in rows] == ["train", "quantize", "finetune"]
    assert rows[-1]["size_bytes"] < 0.17 * rows[0]["size_bytes"] and rows[-1]["accuracy"] > 85
    assert {layer["bits"] for layer in report["layers"]} == {4.0}


def test_quantize_bad_bits_is_one_clear_line(tmp_path):
    recipe = str(write(tmp_path, tiny_recipe(tmp_path)))
    res = runner.invoke(app, ["quantize", "--bits", "9", "-r", recipe, "-q"])
    assert res.exit_code == 2 and "must be 1–8 (or 16 for fp16), got 9" in res.output
    assert "Traceback" not in res.output
    res = runner.invoke(app, ["quantize", "-r", recipe, "-q"])
    assert res.exit_code == 2 and "no bit width given" in res.output


def test_channel_prune_command_reports_shapes_and_macs(tmp_path):
    recipe = str(write(tmp_path, tiny_recipe(tmp_path)))
    res = runner.invoke(app, ["prune", "--rate", "50", "--granularity", "channel", "-r", recipe,
                              "--finetune-epochs", "1", "--json", str(tmp_path / "c.json")])
    assert res.exit_code == 0, res.output
    assert re.search(r"64×32×3×3 → \d+×\d+×3×3", res.output) and "MACs" in res.output
    rows = json.loads((tmp_path / "c.json").read_text())["rows"]
    assert rows[-1]["macs"] < 0.4 * rows[0]["macs"]


def test_train_falls_back_to_builtin_recipe_and_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["train", "--set", "train.epochs=1", "-o", str(tmp_path / "o"), "--json", "j.json"])
    assert res.exit_code == 0, res.output
    assert "built-in quick-start recipe" in res.output
    report = json.loads((tmp_path / "j.json").read_text())
    assert [r["stage"] for r in report["rows"]] == ["train"] and report["rows"][0]["accuracy"] > 80


def test_prune_command_end_to_end(tmp_path):
    recipe = str(write(tmp_path, tiny_recipe(tmp_path)))
    res = runner.invoke(app, ["prune", "--rate", "80", "-r", recipe, "-q", "--finetune-epochs", "1",
                              "--json", str(tmp_path / "p.json")])
    assert res.exit_code == 0, res.output
    rows = json.loads((tmp_path / "p.json").read_text())["rows"]
    assert [r["stage"] for r in rows] == ["train", "prune", "finetune"]
    assert rows[-1]["nonzero"] < 0.25 * rows[0]["nonzero"] and rows[-1]["size_bytes"] < 0.4 * rows[0]["size_bytes"]
    res = runner.invoke(app, ["prune", "-r", recipe, "-q"])
    assert res.exit_code == 2 and "no rate given" in res.output


@pytest.mark.parametrize("rate", ["100", "-5"])
def test_prune_rate_out_of_range_is_one_clear_line(tmp_path, rate):
    recipe = str(write(tmp_path, tiny_recipe(tmp_path)))
    res = runner.invoke(app, ["prune", "--rate", rate, "-r", recipe, "-q"])
    assert res.exit_code == 2 and "prune.rate" in res.output and "Traceback" not in res.output
