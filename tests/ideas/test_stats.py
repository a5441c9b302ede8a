"""The A/B statistics against simulation with known effects (and scipy's own tests)."""

import math

import numpy as np
import pytest
from scipy import stats

from tuneloop.ideas._stats import compare, power, seeds_needed


def simulate(effect, sd, n, trials=500, seed=0):
    """Fraction of 'better' verdicts over simulated paired experiments with a known true effect."""
    rng = np.random.default_rng(seed)
    better = 0
    for _ in range(trials):
        base = rng.normal(0.7, 0.05, n)  # the baseline varies by seed...
        variant = base + rng.normal(effect, sd, n)  # ...and the variant moves each seed by effect +- sd
        better += compare(base.tolist(), variant.tolist(), "max").verdict == "better"
    return better / trials


def test_under_a_null_effect_better_fires_at_about_alpha_over_two():
    rate = simulate(0.0, 0.02, n=5)
    assert 0.02 <= rate <= 0.08  # two-sided test at 0.05: "better" is one tail, 2.5% in theory


@pytest.mark.parametrize("effect, n", [(0.01, 5), (0.02, 4), (0.01, 10)])
def test_power_matches_its_analytic_value(effect, n):
    assert abs(simulate(effect, 0.02, n, seed=n) - power(effect, 0.02, n)) < 0.05


def test_the_paired_test_is_scipys_paired_t_test():
    base, variant = [0.70, 0.72, 0.69, 0.71], [0.73, 0.74, 0.70, 0.75]
    c = compare(base, variant, "max")
    ref = stats.ttest_rel(variant, base)
    assert c.p_value == pytest.approx(ref.pvalue) and c.effect == pytest.approx(np.mean(np.subtract(variant, base)))
    lo, hi = stats.t.interval(0.95, 3, loc=c.effect, scale=stats.sem(np.subtract(variant, base)))
    assert (c.ci_low, c.ci_high) == (pytest.approx(lo), pytest.approx(hi))
    assert c.verdict == "better"


def test_min_mode_counts_a_lower_value_as_better():
    c = compare([0.5, 0.52, 0.51], [0.40, 0.43, 0.41], "min")
    assert c.verdict == "better" and c.effect > 0


def test_inconclusive_says_how_many_seeds_would_resolve_the_predicted_gain():
    c = compare([0.70, 0.72, 0.69], [0.71, 0.71, 0.71], "max", predicted_gain=0.01)
    assert c.verdict == "inconclusive" and c.seeds_needed is not None
    assert power(0.01, c.sd, c.seeds_needed) >= 0.8 > power(0.01, c.sd, c.seeds_needed - 1)
    assert f"about {c.seeds_needed} seeds would detect a gain of 0.01" in c.message


def test_degenerate_inputs():
    assert compare([0.5], [0.6], "max").message == "need at least 2 seeds with finite results in both arms"
    assert compare([0.5, 0.5], [0.6, 0.6], "max").verdict == "better"
    assert compare([0.5, math.nan, 0.4], [0.6, 0.7, 0.45], "max").seeds == 2
    assert seeds_needed(0.0, 0.1) is None and seeds_needed(0.1, 0.0) is None
