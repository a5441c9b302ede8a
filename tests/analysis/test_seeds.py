"""Figures over seeds: the t interval of a mean and Welch's comparison of two groups."""

import math

import pytest
from scipy import stats

from tuneloop.analysis import mean_ci, welch


def test_mean_ci_is_the_t_interval_and_one_value_has_none():
    values = [0.70, 0.72, 0.71, 0.69]
    ci = mean_ci(values)
    low, high = stats.t.interval(0.95, 3, loc=sum(values) / 4, scale=stats.sem(values))
    assert (ci.low, ci.high, ci.n) == (pytest.approx(low), pytest.approx(high), 4)
    assert f"{ci:.3f}".endswith("(n=4)") and "±" in f"{ci:.3f}"
    single = mean_ci([0.5, math.nan])
    assert (single.low, single.high, single.n) == (0.5, 0.5, 1) and "no interval" in f"{single}"
    with pytest.raises(ValueError):
        mean_ci([math.nan])


def test_welch_matches_scipy_and_needs_two_seeds_a_side():
    a, b = [0.95, 0.96, 0.94, 0.955, 0.945], [0.98, 0.975, 0.985, 0.99, 0.97, 0.98]
    d = welch(a, b)
    assert d.p_value == pytest.approx(stats.ttest_ind(b, a, equal_var=False).pvalue)
    assert d.low < d.diff < d.high and d.low > 0
    assert welch([1.0], b) is None
    same = welch([0.5, 0.5], [0.5, 0.5])
    assert (same.diff, same.p_value) == (0.0, 1.0)
