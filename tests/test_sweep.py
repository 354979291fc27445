"""``modelzip sweep``: one baseline, one point per setting, real sizes, table, JSON and plot."""
import json

import pytest
from typer.testing import CliRunner

from cli.app import app
from tests.conftest import tiny_recipe
from tests.conftest import write_recipe as write


@pytest.mark.slow
def test_sweep_points_shrink_with_rate_and_bits(tmp_path, cnn_base):
    recipe = str(write(tmp_path, tiny_recipe(tmp_path)))
    png = tmp_path / "sweep.png"
    res = CliRunner().invoke(app, ["sweep", "-r", recipe, "-c", str(cnn_base), "--rates", "0,90", "--bits", "8,2",
                                   "--finetune-epochs", "0", "--plot", str(png), "--json", str(tmp_path / "s.json")])
    assert res.exit_code == 0, res.output
    assert "accuracy vs size" in res.output and "2 bit" in res.output
    data = json.loads((tmp_path / "s.json").read_text())
    points = {(p["kind"], p["setting"]): p for p in data["points"]}
    assert set(points) == {("prune", 0.0), ("prune", 90.0), ("quantize", 8.0), ("quantize", 2.0)}
    assert points[("prune", 0.0)]["accuracy"] == data["baseline"]  # rate 0 without fine-tuning changes nothing
    assert points[("prune", 90.0)]["size_bytes"] < 0.25 * points[("prune", 0.0)]["size_bytes"]
    assert points[("quantize", 2.0)]["size_bytes"] < 0.5 * points[("quantize", 8.0)]["size_bytes"]
    assert abs(points[("quantize", 8.0)]["accuracy"] - data["baseline"]) <= 1.0
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_sweep_needs_something_to_do(tmp_path):
    recipe = str(write(tmp_path, tiny_recipe(tmp_path)))
    res = CliRunner().invoke(app, ["sweep", "-r", recipe, "--rates", "", "--bits", ""])
    assert res.exit_code == 2 and "nothing to sweep" in res.output


def test_the_plot_has_several_size_ticks_even_over_a_narrow_range(tmp_path):
    from compress.sweep import Point, Sweep, plot

    result = Sweep(95.0, 722_000, [Point("quantize", 8, 95.0, 168_000, 4.3, 1.0),
                                   Point("quantize", 4, 94.0, 95_000, 7.6, 1.0)])
    labels = plot(result, tmp_path / "s.png", "t")
    assert len(labels) >= 3 and (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
