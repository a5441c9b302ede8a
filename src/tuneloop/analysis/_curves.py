"""Curve summaries: where a metric started, its best, where it ended, and where it is heading."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

_HIGHER_IS_BETTER = re.compile(r"(acc|auc|f1|precision|recall|score|iou|map|r2)", re.IGNORECASE)


def direction_of(metric: str, objective: str | None = None, mode: str | None = None) -> str:
    """'max' or 'min': the study's mode for its objective, else a guess from the name."""
    if metric == objective and mode:
        return mode
    return "max" if _HIGHER_IS_BETTER.search(metric) else "min"


@dataclass(frozen=True)
class CurveSummary:
    """One metric's curve in five numbers and a word."""

    name: str
    points: int
    start: float
    best: float
    best_step: int
    end: float
    end_step: int
    trend: str  # improving | worsening | flat | diverged | too short


def summarize_curve(name: str, points: Sequence[tuple[int, float]], direction: str = "min",
                    tolerance: float = 0.01) -> CurveSummary:
    """Summarize ``points`` [(step, value), ...]. The trend compares the mean of the last quarter
    with the quarter before it: a relative change beyond ``tolerance`` is a trend."""
    values = [v for _, v in points]
    finite = [(s, v) for s, v in points if math.isfinite(v)]
    pick = max if direction == "max" else min
    best_step, best = pick(finite, key=lambda p: p[1]) if finite else (points[-1][0], math.nan)
    if not math.isfinite(values[-1]):
        trend = "diverged"
    elif len(finite) < 4:
        trend = "too short"
    else:
        q = max(1, len(finite) // 4)
        last = sum(v for _, v in finite[-q:]) / q
        before = sum(v for _, v in finite[-2 * q:-q]) / q
        change = (last - before) / max(abs(before), 1e-12)
        better = change > tolerance if direction == "max" else change < -tolerance
        worse = change < -tolerance if direction == "max" else change > tolerance
        trend = "improving" if better else "worsening" if worse else "flat"
    return CurveSummary(name, len(points), values[0], best, best_step, values[-1], points[-1][0], trend)
