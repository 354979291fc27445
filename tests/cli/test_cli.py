"""The CLI end to end through Typer's CliRunner: outputs, JSON, exit codes, error text."""
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from tests.conftest import from_checkpoint, read_json, tiny_recipe, write_recipe

runner = CliRunner()


def test_run_writes_artifact_and_json(tmp_path):
    raw = tiny_recipe(tmp_path, pipeline=[{"train": {"epochs": 1, "batch_size": 64}}, "evaluate"])
    res = runner.invoke(app, ["run", str(write_recipe(tmp_path, raw)), "--json", str(tmp_path / "r.json"), "-q"])
    assert res.exit_code == 0, res.output
    report = read_json(tmp_path / "r.json")
    final = report["rows"][-1]
    assert final["accuracy"] > 70.0
    assert Path(report["output"]).stat().st_size == final["size_bytes"]
    assert report["fp32_bytes"] > 0 and final["ratio"] == pytest.approx(report["fp32_bytes"] / final["size_bytes"],
                                                                         rel=1e-3)
    assert final["params"] == final["nonzero"] == 179_926


def test_eval_reproduces_reported_accuracy_and_uses_the_stored_data(tmp_path, cnn_base, cnn_base_report, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["eval", str(cnn_base), "--json", "-"])
    assert res.exit_code == 0, res.output
    assert "data settings stored in" in res.stderr
    out = read_json_text(res.stdout)
    assert out["rows"][0]["accuracy"] == cnn_base_report["rows"][-1]["accuracy"]
    assert out["rows"][0]["size_bytes"] == cnn_base.stat().st_size  # an unchanged artifact is its file


def read_json_text(text: str) -> dict:
    import json

    return json.loads(text[text.index("{"):])


def test_inspect_shows_tensors_and_report(cnn_base):
    res = runner.invoke(app, ["inspect", str(cnn_base)])
    assert res.exit_code == 0, res.output
    assert "7.weight" in res.stdout and "100×1600" in res.stdout and "train*" in res.stdout
    res = runner.invoke(app, ["inspect", str(cnn_base), "--json", "-"])
    data = read_json_text(res.stdout)
    assert data["bytes"] == cnn_base.stat().st_size and data["report"]["rows"][-1]["size_bytes"] == data["bytes"]


def test_bad_recipe_exit_2_all_errors_no_traceback(tmp_path):
    raw = tiny_recipe(tmp_path)
    raw["pipeline"] = [{"train": {"epochs": -3, "optimiser": "adam", "batch_size": "big"}}]
    res = runner.invoke(app, ["run", str(write_recipe(tmp_path, raw))])
    assert res.exit_code == 2
    assert "pipeline[0].train.epochs: must be > 0, got -3" in res.output
    assert "pipeline[0].train.optimiser: unknown key; did you mean 'optimizer'?" in res.output
    assert "pipeline[0].train.batch_size:" in res.output
    assert "Traceback" not in res.output


def test_validate_ok_and_missing_file(tmp_path):
    res = runner.invoke(app, ["validate", str(write_recipe(tmp_path, tiny_recipe(tmp_path)))])
    assert res.exit_code == 0 and "ok" in res.stdout
    res = runner.invoke(app, ["validate", str(tmp_path / "nope.yaml")])
    assert res.exit_code == 2 and "cannot read recipe" in res.output


def test_constraint_violation_exits_3_and_still_writes(tmp_path, cnn_base):
    raw = from_checkpoint(tmp_path, cnn_base, {"prune": {"rate": 99}}, constraints={"max_accuracy_drop": 0.1})
    res = runner.invoke(app, ["run", str(write_recipe(tmp_path, raw)), "-q", "--json", str(tmp_path / "r.json")])
    assert res.exit_code == 3, res.output
    report = read_json(tmp_path / "r.json")
    assert report["constraint"]["met"] is False and Path(report["output"]).is_file()
    assert Path(report["output"]).name == "model.over-budget.mzip" and "VIOLATED" in res.output
    assert not (tmp_path / "out" / "model.mzip").exists()


def test_untrusted_pickle_refused_with_exit_2(tmp_path):
    import torch

    from compress.models import build_model

    torch.save(build_model("mnist-cnn", {}), tmp_path / "full.pt")
    res = runner.invoke(app, ["eval", str(tmp_path / "full.pt"), "-r",
                              str(write_recipe(tmp_path, tiny_recipe(tmp_path)))])
    assert res.exit_code == 2 and "--trust-checkpoint" in res.output and "Traceback" not in res.output


def test_never_overwrites_input(tmp_path, cnn_base):
    res = runner.invoke(app, ["run", str(write_recipe(tmp_path, tiny_recipe(tmp_path))), "-c", str(cnn_base),
                              "-o", str(cnn_base.parent), "-q"])
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
    recipe = str(write_recipe(tmp_path, tiny_recipe(tmp_path)))
    res = runner.invoke(app, ["run", recipe, "--set", "train.epochz=2", "--device", "tpu"])
    assert res.exit_code == 2
    assert "epochz: unknown key; did you mean 'epochs'?" in res.output and "device: must be" in res.output


def test_quantize_command_end_to_end(tmp_path, cnn_base):
    recipe = str(write_recipe(tmp_path, tiny_recipe(tmp_path)))
    res = runner.invoke(app, ["quantize", "--bits", "4", "-r", recipe, "-c", str(cnn_base), "--finetune-epochs", "1",
                              "--json", str(tmp_path / "q.json")])
    assert res.exit_code == 0, res.output
    assert "per layer" in res.output and "quantized 4 weight tensors to 4 bits" in res.output
    report = read_json(tmp_path / "q.json")
    rows = report["rows"]
    assert [r["stage"] for r in rows] == ["checkpoint", "quantize", "finetune"]
    assert rows[-1]["size_bytes"] < 0.17 * rows[0]["size_bytes"] and rows[-1]["accuracy"] > 85
    assert {layer["bits"] for layer in report["layers"]} == {4.0}


def test_quantize_bad_bits_is_one_clear_line(tmp_path):
    recipe = str(write_recipe(tmp_path, tiny_recipe(tmp_path)))
    res = runner.invoke(app, ["quantize", "--bits", "9", "-r", recipe, "-q"])
    assert res.exit_code == 2 and "must be 1–8 (or 16 for fp16), got 9" in res.output
    assert "Traceback" not in res.output
    res = runner.invoke(app, ["quantize", "-r", recipe, "-q"])
    assert res.exit_code == 2 and "no bit width given" in res.output


def test_channel_prune_command_reports_shapes_and_macs(tmp_path, cnn_base):
    recipe = str(write_recipe(tmp_path, tiny_recipe(tmp_path)))
    res = runner.invoke(app, ["prune", "--rate", "50", "--granularity", "channel", "-r", recipe, "-c", str(cnn_base),
                              "--finetune-epochs", "1", "--json", str(tmp_path / "c.json")])
    assert res.exit_code == 0, res.output
    assert re.search(r"64×32×3×3 → \d+×\d+×3×3", res.output) and "MACs" in res.output
    rows = read_json(tmp_path / "c.json")["rows"]
    assert rows[-1]["macs"] < 0.4 * rows[0]["macs"]


def test_the_recipe_line_names_the_model_and_data_that_will_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["train", "--set", "model.name=lenet-300-100", "--set", "train.epochs=1",
                              "-o", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert "built-in quick-start recipe (digits, lenet-300-100)" in res.output


def test_train_falls_back_to_builtin_recipe_and_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["train", "--set", "train.epochs=1", "-o", str(tmp_path / "o"), "--json", "j.json"])
    assert res.exit_code == 0, res.output
    assert "built-in quick-start recipe (digits, mnist-cnn)" in res.output
    report = read_json(tmp_path / "j.json")
    assert [r["stage"] for r in report["rows"]] == ["train"] and report["rows"][0]["accuracy"] > 80


def test_prune_command_end_to_end(tmp_path, cnn_base):
    recipe = str(write_recipe(tmp_path, tiny_recipe(tmp_path)))
    res = runner.invoke(app, ["prune", "--rate", "80", "-r", recipe, "-c", str(cnn_base), "-q", "--finetune-epochs",
                              "1", "--json", str(tmp_path / "p.json")])
    assert res.exit_code == 0, res.output
    report = read_json(tmp_path / "p.json")
    rows = report["rows"]
    assert report["output"] == str(tmp_path / "out" / "prune" / "model.mzip")  # without -o: one folder per command
    printed = " ".join(res.output.split())
    assert f"continue from it: modelzip prune|quantize -c {report['output']}; " in printed
    assert f"check it: modelzip eval {report['output']}" in printed  # eval takes the file itself, not -c
    assert [r["stage"] for r in rows] == ["checkpoint", "prune", "finetune"]
    assert rows[-1]["nonzero"] < 0.25 * rows[0]["nonzero"] and rows[-1]["size_bytes"] < 0.4 * rows[0]["size_bytes"]
    res = runner.invoke(app, ["prune", "-r", recipe, "-q"])
    assert res.exit_code == 2 and "no rate given" in res.output


def test_prune_uses_the_recipes_own_stage_with_flags_on_top(tmp_path, cnn_base):
    raw = from_checkpoint(tmp_path, cnn_base, {"prune": {"rate": 60, "scope": "layer", "skip": ["9"]}})
    res = runner.invoke(app, ["prune", "--rate", "70", "-r", str(write_recipe(tmp_path, raw)), "-q",
                              "--finetune-epochs", "0", "--json", str(tmp_path / "p.json")])
    assert res.exit_code == 0, res.output
    layers = {x["name"]: x for x in read_json(tmp_path / "p.json")["layers"]}
    assert layers["9"]["sparsity"] == 0 and layers["0"]["sparsity"] == pytest.approx(0.7, abs=0.01)


@pytest.mark.parametrize("rate", ["100", "-5"])
def test_prune_rate_out_of_range_is_one_clear_line(tmp_path, rate):
    recipe = str(write_recipe(tmp_path, tiny_recipe(tmp_path)))
    res = runner.invoke(app, ["prune", "--rate", rate, "-r", recipe, "-q"])
    assert res.exit_code == 2 and "prune.rate" in res.output and "Traceback" not in res.output


def test_help_and_version_do_not_import_torch():
    import subprocess
    import sys

    code = ("import sys; from cli.app import app\ntry:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().endswith("False"), out.stdout + out.stderr
    assert "Usage" in out.stdout


def test_inspect_survives_a_malformed_stored_report(tmp_path, cnn_base):
    from compress import artifact

    header = artifact.read_header(cnn_base)
    blob = artifact.assemble((header.manifest["tensors"], header.payloads), header.spec,
                             recipe=header.manifest["recipe"], report={"rows": "not rows", "model": 3})
    (tmp_path / "m.mzip").write_bytes(blob)
    res = runner.invoke(app, ["inspect", str(tmp_path / "m.mzip")])
    assert res.exit_code == 0, res.output
    assert "7.weight" in res.stdout and "the stored report cannot be shown" in res.stdout


def test_eval_of_an_mnist_artifact_without_a_recipe_uses_its_own_data(tmp_path, monkeypatch):
    from tests.conftest import write_idx

    root = write_idx(tmp_path / "data", n_train=128, n_test=64)
    raw = tiny_recipe(tmp_path, model={"name": "lenet-300-100"}, data={"name": "mnist", "root": str(root)},
                      pipeline=[{"train": {"epochs": 1, "batch_size": 32}}, "evaluate"])
    res = runner.invoke(app, ["run", str(write_recipe(tmp_path, raw)), "-q", "--json", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    trained = read_json(tmp_path / "r.json")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # no ./modelzip.yaml, no --recipe: not the built-in digits recipe
    res = runner.invoke(app, ["eval", trained["output"], "--json", "-"])
    assert res.exit_code == 0, res.output
    assert f"data settings stored in {trained['output']} (mnist, root {root})" in " ".join(res.stderr.split())
    assert read_json_text(res.stdout)["rows"][0]["accuracy"] == trained["rows"][-1]["accuracy"]


def test_the_report_fits_80_columns(tmp_path, cnn_base):
    res = runner.invoke(app, ["quantize", "--bits", "4", "-c", str(cnn_base), "-r",
                              str(write_recipe(tmp_path, tiny_recipe(tmp_path))), "--finetune-epochs", "0", "-q"],
                        env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    table = res.stdout[:res.stdout.index("latency: median")]
    assert max(len(line) for line in table.splitlines()) <= 80 and "…" not in table
    for header in ("top-1 %", "Δ pp", "size", "ratio", "latency"):
        assert header in table
    assert re.search(r"quantize\s+\d+\.\d\d\s+[+-]\d+\.\d\d\s+.*KB\s+\d+\.\d×\s+[\d.]+ ms", table)
