"""Per-layer sensitivity: exact baselines, the expected ordering, the table, the plot and its error."""
import json
import sys

import torch
from typer.testing import CliRunner

import compress
from cli.app import app
from compress.analysis.sensitivity import measure
from compress.context import RunContext
from compress.data import load_dataset
from compress.evaluate import evaluate
from compress.quantize import linear
from compress.recipe import DataConfig, LinearQuantize
from tests.conftest import tiny_recipe
from tests.conftest import write_recipe as write

CPU = torch.device("cpu")


def test_measure_restores_weights_and_orders_damage(lenet_base):
    data = load_dataset(DataConfig(name="digits"))
    model = compress.load(lenet_base)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = measure(model, data.test, RunContext(CPU, 0), rates=[0, 50, 99], bits=[8, 2],
                     project=linear.projection(LinearQuantize(bits=8)))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert result.baseline == evaluate(model, data.test, 1000, CPU).accuracy
    assert list(result.prune) == ["1", "3", "5"] and result.params["1"] == 784 * 300
    for layer in result.prune:
        assert result.prune[layer][0] == result.baseline
        assert result.prune[layer][99] < result.prune[layer][50] + 1
        assert abs(result.bits[layer][8] - result.baseline) <= 1.0
    assert result.prune["5"][99] < result.baseline - 20  # the classifier cannot lose 99 % of its weights


def test_cli_table_json_and_plot_on_the_calibration_split(tmp_path, cnn_base):
    recipe = str(write(tmp_path, tiny_recipe(tmp_path)))
    png = tmp_path / "s.png"
    res = CliRunner().invoke(app, ["sensitivity", "-r", recipe, "-c", str(cnn_base), "--rates", "50,90", "--bits", "4",
                                   "--plot", str(png), "--json", str(tmp_path / "s.json")])
    assert res.exit_code == 0, res.output
    assert "90 %" in res.output and "4 bit" in res.output
    assert "first 1,437 training images" in res.output and "never the test split" in res.output
    data = json.loads((tmp_path / "s.json").read_text())
    assert set(data["prune"]) == {"0", "3", "7", "9"} and set(data["bits"]["9"]) == {"4"}
    assert data["split"] == "first 1,437 training images"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_plot_without_matplotlib_says_how_to_get_it(tmp_path, monkeypatch, cnn_base):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    recipe = str(write(tmp_path, tiny_recipe(tmp_path)))
    res = CliRunner().invoke(app, ["sensitivity", "-r", recipe, "-c", str(cnn_base), "--rates", "50", "--bits", "",
                                   "--plot", str(tmp_path / "s.png"), "-q"])
    assert res.exit_code == 2 and "modelzip[plot]" in res.output


def test_bad_rates_are_one_clear_line(tmp_path):
    recipe = str(write(tmp_path, tiny_recipe(tmp_path)))
    res = CliRunner().invoke(app, ["sensitivity", "-r", recipe, "--rates", "50,abc"])
    assert res.exit_code == 2 and "comma-separated numbers" in res.output
