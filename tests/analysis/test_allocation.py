"""Adaptive allocation: per-layer rates/bits meet the total exactly and go where the loss notices least."""
import pytest

from compress.analysis import allocation
from compress.errors import InputError

SIZES = {"tolerant": 9000, "sensitive": 1000}
RATES = {"tolerant": {50.0: 0.0, 90.0: 0.01, 99.0: 0.5},
         "sensitive": {50.0: 0.3, 90.0: 2.0, 99.0: 5.0}}


def _mean(rates, sizes):
    return sum(rates[n] * sizes[n] for n in rates) / sum(sizes.values())


@pytest.mark.parametrize("rate", [30.0, 80.0, 85.0, 95.0])
def test_rates_meet_the_mean_exactly_and_spare_the_sensitive_layer(rate):
    rates = allocation.rates_for(RATES, SIZES, rate)
    assert _mean(rates, SIZES) == pytest.approx(rate, abs=1e-6)
    assert rates["tolerant"] > rates["sensitive"]
    assert all(0 <= r <= 99.0 for r in rates.values())


def test_noisy_curves_are_made_monotone():
    assert allocation.monotone({10.0: 0.2, 20.0: -0.1, 30.0: 0.5}) == {10.0: 0.2, 20.0: 0.2, 30.0: 0.5}
    assert allocation.monotone({8.0: 0.0, 4.0: 0.3, 2.0: 0.1}, rising=False) == {8.0: 0.0, 4.0: 0.3, 2.0: 0.3}


def test_a_rate_beyond_the_grid_is_an_error():
    with pytest.raises(InputError, match="above what the measured rate grid reaches"):
        allocation.rates_for(RATES, SIZES, 99.5)


BITS = {"big": {8: 0.0, 6: 0.0, 4: 0.02, 3: 0.1, 2: 1.0}, "small": {8: 0.0, 6: 0.2, 4: 1.0, 3: 3.0, 2: 6.0}}
BIG = {"big": 100_000, "small": 1_000}


def test_bits_meet_the_mean_and_narrow_the_tolerant_layer_first():
    bits = allocation.bits_for(BITS, BIG, 4.0)
    assert allocation.mean_bits(bits, BIG) <= 4.0
    assert bits["big"] < bits["small"] == 8
    with pytest.raises(InputError, match="below the narrowest"):
        allocation.bits_for(BITS, BIG, 1.5)


def test_bits_path_runs_from_widest_to_narrowest_one_step_at_a_time():
    path = allocation.bits_path(BITS, BIG)
    assert path[0] == {"big": 8, "small": 8} and path[-1] == {"big": 2, "small": 2}
    means = [allocation.mean_bits(p, BIG) for p in path]
    assert means == sorted(means, reverse=True) and len(path) == 1 + 2 * 4
    for a, b in zip(path, path[1:]):
        assert sum(a[n] != b[n] for n in a) == 1
