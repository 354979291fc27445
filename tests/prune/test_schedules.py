"""Schedules: the cubic ramp, iterative cycles and gradual pruning inside fine-tuning."""
import pytest
import torch

import compress
from compress.pipeline import RunResult
from compress.prune.schedules import cubic, cycle_rates
from tests.conftest import from_checkpoint


def test_cubic_ramp_matches_zhu_and_gupta():
    assert cubic(0.0, 80) == 0.0 and cubic(1.0, 80) == 80.0 and cubic(2.0, 80) == 80.0
    assert cubic(0.5, 80) == pytest.approx(80 * (1 - 0.5 ** 3))
    assert cubic(0.5, 90, initial=10) == pytest.approx(90 + (10 - 90) * 0.125)
    values = [cubic(t / 20, 90) for t in range(21)]
    assert values == sorted(values)
    assert values[1] - values[0] > values[-1] - values[-2]  # prunes fast early, slowly late


def test_cycle_rates_end_at_target():
    rates = cycle_rates(90.0, 3)
    assert len(rates) == 3 and rates == sorted(rates) and rates[-1] == pytest.approx(90.0)


def _sparsity(model: torch.nn.Module) -> float:
    weights = [m.weight for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    return sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)


def _run_prune(tmp_path, base, prune: dict) -> RunResult:
    prune = {"zero_unread": False, **prune}  # the schedules' own rates (unread units would add zeros)
    raw = from_checkpoint(tmp_path, base, {"prune": prune}, {"finetune": {"epochs": 1, "optimizer": "sgd", "lr": 0.01}})
    return compress.run(compress.load_recipe(raw), write=False)


def test_gradual_ramps_masks_during_finetuning_and_keeps_them(tmp_path, cnn_base):
    result = _run_prune(tmp_path, cnn_base, {"rate": 80, "schedule": "gradual", "update_every": 5,
                                   "finetune": {"epochs": 2, "batch_size": 64, "lr": 1e-3}})
    assert _sparsity(result.model) == pytest.approx(0.8, abs=0.002)
    note = next(n for n in result.report.notes if n.startswith("gradual"))
    assert "final rate 80.0%" in note
    updates = int(note.split(": ")[1].split()[0])
    assert updates >= 5  # 46 steps, ramp over 75 %, one update every 5 steps
    rows = {r.stage: r for r in result.report.rows}
    assert rows["checkpoint"].accuracy > 85 and result.report.final.accuracy > rows["checkpoint"].accuracy - 5
    pairs = result.state.hooks[0].pairs
    for p, keep in pairs:  # still zero after the later finetune stage
        assert torch.all(p[~keep] == 0)
    assert sum(int((~k).sum()) for _, k in pairs) == pytest.approx(0.8 * sum(k.numel() for _, k in pairs), abs=2)


def test_iterative_reaches_target_through_cycles(tmp_path, cnn_base):
    result = _run_prune(tmp_path, cnn_base, {"rate": 75, "schedule": "iterative", "iterations": 2,
                                   "finetune": {"epochs": 1, "batch_size": 64, "lr": 1e-3}})
    assert _sparsity(result.model) == pytest.approx(0.75, abs=0.002)
    assert any("iterative pruning" in n and "→ 75.0%" in n for n in result.report.notes)
    assert result.report.final.accuracy > 85
