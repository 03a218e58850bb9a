"""kernellab.stats against its references: SciPy (a reference implementation, installed with the
sweep plugins) and the textbook formulas, on fixed data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from kernellab import stats

RNG = np.random.default_rng(20261202)
SAMPLES = [  # (x, y): small and large, with and without ties
    (RNG.normal(size=n1), RNG.normal(0.7, size=n2))
    for n1, n2 in [(1, 1), (2, 9), (3, 4), (5, 5), (8, 20), (9, 9), (30, 40), (100, 100)]
]
SAMPLES += [(np.round(x, 1), np.round(y, 1)) for x, y in SAMPLES]


@pytest.mark.parametrize(("x", "y"), SAMPLES)
def test_mann_whitney_p_is_scipys(x: np.ndarray, y: np.ndarray) -> None:
    expected = scipy.stats.mannwhitneyu(x, y, alternative="two-sided").pvalue
    assert stats.mann_whitney_p(x, y) == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_identical_groups_give_p_near_1_and_separated_ones_a_tiny_p() -> None:
    x = RNG.normal(size=50)
    assert stats.mann_whitney_p(x, x.copy()) == pytest.approx(1.0, abs=0.01)
    far = stats.mann_whitney_p(RNG.normal(size=100), RNG.normal(10, size=100))
    assert 0 < far < 1e-3
    # far into the tail, where 1 - erf would round to 0: U's normal approximation, by hand
    z = (100 * 100 / 2 - 0.5) / math.sqrt(100 * 100 * 201 / 12)
    assert far == pytest.approx(math.erfc(z / math.sqrt(2)), rel=1e-9)


def test_mann_whitney_of_an_empty_sample_is_none() -> None:
    assert stats.mann_whitney_p([], [1.0]) is None


@pytest.mark.parametrize("df", [1, 2, 3, 4, 7, 10, 29, 30, 100, 200, 201, 1000, 10**5])
def test_t_quantile_is_scipys(df: int) -> None:
    assert stats.t_quantile(0.975, df) == pytest.approx(scipy.stats.t.ppf(0.975, df), rel=1e-8)


@pytest.mark.parametrize(("k", "n"), [(0, 1), (1, 1), (0, 10), (3, 10), (25, 100), (97, 100)])
def test_wilson_interval_is_its_formula(k: int, n: int) -> None:
    """Wilson (1927): (p + z²/2n ± z √(p(1-p)/n + z²/4n²)) / (1 + z²/n), z the 97.5% quantile."""
    z, p = 1.959963984540054, k / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    low, high = stats.wilson_interval(k, n)
    assert (low, high) == pytest.approx((max(0, centre - half), min(1, centre + half)), abs=1e-12)
    assert low <= p <= high


def test_wilson_interval_of_the_issues_example() -> None:
    """25 of 100 seeds: 18–34%, as the issue's verdict says."""
    low, high = stats.wilson_interval(25, 100)
    assert (round(100 * low), round(100 * high)) == (18, 34)


def test_mean_interval_is_students_t() -> None:
    x = RNG.normal(3, 2, size=12)
    mean, low, high = stats.mean_interval(x)
    expected = scipy.stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=scipy.stats.sem(x))
    assert mean == pytest.approx(x.mean())
    assert (low, high) == pytest.approx(expected, rel=1e-9)
    assert stats.mean_interval([2.5]) == (2.5, 2.5, 2.5)
    assert stats.mean_interval([]) is None


def test_quantiles_are_numpys_and_empty_gives_none() -> None:
    x = RNG.normal(size=37)
    assert stats.quantiles(x, (0.5, 0.1, 0.9)) == pytest.approx(np.quantile(x, (0.5, 0.1, 0.9)))
    assert stats.quantiles([], (0.5, 0.1)) == [None, None]
