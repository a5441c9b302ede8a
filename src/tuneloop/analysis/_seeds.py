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
