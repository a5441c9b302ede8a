"""Paired comparison over seeds: is the variant really better than the baseline, or seed noise?

Both arms run on the same K seeds, so each seed gives one difference (variant - baseline, signed
so that positive means better in the study's direction). The test is a paired two-sided t-test
on those differences; the 95% interval is the t interval of their mean. When the test cannot
decide, the number of seeds needed comes from the noncentral t distribution: the smallest K with
80% power to detect the idea's predicted gain, given the differences' spread seen here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from scipy import stats

from tuneloop._validation import fail
from tuneloop.direction import Direction

ALPHA = 0.05
POWER = 0.80


@dataclass(frozen=True)
class Comparison:
    """The verdict of a paired comparison, with its evidence."""

    verdict: str  # better | worse | inconclusive
    effect: float  # mean improvement (positive = better)
    ci_low: float
    ci_high: float
    p_value: float
    seeds: int
    sd: float
    seeds_needed: int | None  # for an inconclusive verdict: to detect the predicted gain
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def power(effect: float, sd: float, n: int, alpha: float = ALPHA) -> float:
    """Probability that a paired two-sided t-test over ``n`` seeds calls an improvement of
    ``effect`` (differences with spread ``sd``) "better"."""
    if n < 2 or sd <= 0:
        return float("nan")
    df = n - 1
    crit = stats.t.ppf(1 - alpha / 2, df)
    return float(stats.nct.sf(crit, df, effect / (sd / math.sqrt(n))))


def seeds_needed(effect: float, sd: float, alpha: float = ALPHA, target: float = POWER, cap: int = 1000) -> int | None:
    """The fewest seeds with ``target`` power to detect ``effect``; None when it cannot be said."""
    if not (effect > 0 and sd > 0 and math.isfinite(effect) and math.isfinite(sd)):
        return None
    # start just below the normal approximation, then step up: a few t evaluations, not hundreds
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(target)
    start = max(2, int((z * sd / effect) ** 2) - 1)
    if start > cap:
        return None
    while start > 2 and power(effect, sd, start - 1, alpha) >= target:
        start -= 1
    for n in range(start, cap + 1):
        if power(effect, sd, n, alpha) >= target:
            return n
    return None


def compare(baseline: Sequence[float], variant: Sequence[float], mode: str, predicted_gain: float | None = None,
            alpha: float = ALPHA) -> Comparison:
    """Compare paired outcomes (the same seeds, in the same order) in the study's ``mode``."""
    if len(baseline) != len(variant):
        raise fail("variant", "compare", f"paired with 'baseline': one value per seed, {len(baseline)} values",
                   f"{len(variant)} values")
    sign = -Direction.of(mode, "compare").sign  # a gain is positive whichever way the metric improves
    diffs = [sign * (v - b) for b, v in zip(baseline, variant, strict=True) if math.isfinite(b) and math.isfinite(v)]
    n = len(diffs)
    if n < 2:
        return Comparison("inconclusive", diffs[0] if diffs else math.nan, math.nan, math.nan, math.nan, n, math.nan,
                          None, "need at least 2 seeds with finite results in both arms")
    mean = sum(diffs) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    if sd == 0:
        verdict = "better" if mean > 0 else "worse" if mean < 0 else "inconclusive"
        return Comparison(verdict, mean, mean, mean, 0.0 if mean else 1.0, n, 0.0, None,
                          f"{verdict}: every seed moved by exactly {mean:+.4g} ({n} seeds)")
    se = sd / math.sqrt(n)
    t = mean / se
    p = float(2 * stats.t.sf(abs(t), n - 1))
    half = float(stats.t.ppf(1 - alpha / 2, n - 1)) * se
    if p < alpha:
        verdict = "better" if mean > 0 else "worse"
        needed = None
        message = f"{verdict}: {mean:+.4g} (95% CI {mean - half:+.4g} to {mean + half:+.4g}, p = {p:.3g}, {n} seeds)"
    else:
        verdict = "inconclusive"
        gain = abs(predicted_gain) if predicted_gain else abs(mean)
        needed = seeds_needed(gain, sd, alpha)
        more = f"; about {needed} seeds would detect a gain of {gain:.4g} with 80% power" if needed else ""
        message = (f"inconclusive: {mean:+.4g} (95% CI {mean - half:+.4g} to {mean + half:+.4g}, p = {p:.3g}, "
                   f"{n} seeds){more}")
    return Comparison(verdict, mean, mean - half, mean + half, p, n, sd, needed, message)
