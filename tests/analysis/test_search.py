"""The one search driver: bisection on continuous and discrete knobs, refiners' phases, forced fallback."""
import pytest

from compress.analysis.search import Candidate, Knob, bisect, search
from compress.budget import Budget
from compress.report import Trial


def _trial(phase: str, level: float, acc: float, floor: float) -> Trial:
    return Trial(phase, level, acc, 0, acc >= floor, 0.0)


def test_bisect_finds_the_boundary_on_continuous_and_discrete_levels():
    assert bisect(0, 100, lambda x: x <= 37.3, steps=20) == pytest.approx(37.3, abs=1e-3)
    assert bisect(0, 10, lambda k: k <= 6, discrete=True) == 6
    assert bisect(0, 10, lambda k: False, discrete=True) == 0
    tried = []
    assert bisect(4, 7, lambda k: tried.append(k) or True, steps=3, discrete=True) == 6
    assert tried == [5, 6]  # integers only, none twice: 6.5 would have been level 6 again
    assert bisect(0, 64, lambda k: True, steps=2, discrete=True) == 48  # a step limit holds for integers too


def test_probe_only_knob_and_an_impossible_budget():
    budget = Budget(90.0, "test")
    acc = [99, 98, 96, 93, 91, 89, 80]  # accuracy along a discrete path of 7 levels

    result = search(Knob(0, len(acc), lambda k: _trial("bits", k, acc[int(k)], 90), discrete=True, check_lo=True),
                    budget)
    assert result.level == 4 and result.candidate is None and all(t.phase == "bits" for t in result.trials)
    failing = search(Knob(0, 3, lambda k: _trial("bits", k, 50, 90), discrete=True, check_lo=True), budget)
    assert failing.level is None and len(failing.trials) == 1


class Refiner:
    """Fine-tuning recovers 3 pp; the climb keeps the last level under 60 and reaches 70."""

    def __init__(self, kept: float | None) -> None:
        self.kept, self.tuned = kept, []

    def climb(self, start, trials):
        trials.append(_trial("climb", start, 0, 0))
        return (Candidate(self.kept, "climbed") if self.kept is not None else None), 70.0

    def start(self, level):
        return Candidate(level, "dense")

    def tune(self, level, base):
        self.tuned.append((level, base.state))
        acc = 100 - level / 2 + 3
        return _trial("bisect", level, acc, 70), Candidate(level, f"tuned@{level:g}")


def test_refiner_phases_probe_climb_tune():
    refiner = Refiner(kept=50.0)
    probe = lambda r: _trial("probe", r, 100 - r / 2, 70)  # noqa: E731 - inside until 60
    result = search(Knob(0, 99.5, probe, refiner=refiner), Budget(70.0, "test"))
    assert [t.phase for t in result.trials][:7] == ["probe"] * 7 and result.probed == pytest.approx(59.6, abs=0.5)
    assert [t.phase for t in result.trials][7:] == ["climb", "bisect", "bisect", "bisect"]
    assert result.level == 65 and result.candidate.state == "tuned@65"  # 60 in, 65 in, 67.5 out
    assert refiner.tuned[0] == (60.0, "climbed")  # each tune starts from the best kept so far


def test_when_the_climb_keeps_nothing_one_forced_trial_gives_the_least_damage():
    refiner = Refiner(kept=None)
    result = search(Knob(90, 99.5, lambda r: _trial("probe", r, 0, 70), refiner=refiner), Budget(70.0, "test"))
    assert refiner.tuned == [(90.0, "dense")] and result.level == 90 and result.candidate.state == "tuned@90"
