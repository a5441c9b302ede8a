"""Figures over seeds: a mean with its t-based confidence interval, and nothing shown bare."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class MeanCI:
    """The mean of ``n`` values with a two-sided t interval (``low == high == mean`` for n=1)."""

    mean: float
    low: float
    high: float
    n: int
    sd: float

    @property
    def half(self) -> float:
        return (self.high - self.low) / 2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __format__(self, spec: str) -> str:
        spec = spec or ".4g"
        if self.n < 2:
            return f"{self.mean:{spec}} (n=1, no interval)"
        return f"{self.mean:{spec}} ± {self.half:{spec}} (n={self.n})"


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> MeanCI:
    """Mean and t interval of the finite ``values``; ValueError when there are none."""
    from scipy import stats

    v = [float(x) for x in values if x is not None and math.isfinite(x)]
    if not v:
        raise ValueError("mean_ci needs at least one finite value")
    n, m = len(v), sum(v) / len(v)
    if n < 2:
        return MeanCI(m, m, m, 1, 0.0)
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (n - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return MeanCI(m, m - half, m + half, n, sd)


@dataclass(frozen=True)
class Difference:
    """``b - a`` between two groups of seeds: Welch's t interval and two-sided p-value."""

    diff: float
    low: float
    high: float
    p_value: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def welch(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> Difference | None:
    """How much ``b`` differs from ``a`` (unpaired, unequal variances); None with fewer than 2 each."""
    from scipy import stats

    x = [float(v) for v in a if v is not None and math.isfinite(v)]
    y = [float(v) for v in b if v is not None and math.isfinite(v)]
    if len(x) < 2 or len(y) < 2:
        return None
    ca, cb = mean_ci(x), mean_ci(y)
    va, vb = ca.sd**2 / len(x), cb.sd**2 / len(y)
    diff = cb.mean - ca.mean
    if va + vb == 0:
        return Difference(diff, diff, diff, 0.0 if diff else 1.0)
    df = (va + vb) ** 2 / (va**2 / (len(x) - 1) + vb**2 / (len(y) - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * math.sqrt(va + vb)
    p = float(2 * stats.t.sf(abs(diff) / math.sqrt(va + vb), df))
    return Difference(diff, diff - half, diff + half, p)
