"""Curve summaries: where a metric started, its best, where it ended, and where it is heading."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from tuneloop.direction import Direction

_HIGHER_IS_BETTER = re.compile(r"(acc|auc|f1|precision|recall|score|iou|map|r2)", re.IGNORECASE)
_LOWER_IS_BETTER = re.compile(r"(loss|error|err\b|perplexity|mse|mae|rmse)", re.IGNORECASE)


def direction_of(metric: str, objective: str | None = None, mode: str | None = None) -> Direction | None:
    """MAX or MIN for a metric with a better direction (the study's mode for its objective, else a
    guess from the name); None for a quantity that has none (grad_norm, lr, dead_relu/*)."""
    if metric == objective and mode:
        return Direction.of(mode, "direction_of")
    if "/" in metric and not metric.startswith("step/"):
        return None  # per-layer diagnostics: higher or lower is not better in itself
    if _HIGHER_IS_BETTER.search(metric):
        return Direction.MAX
    if _LOWER_IS_BETTER.search(metric):
        return Direction.MIN
    return None


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
    trend: str  # improving | worsening | rising | falling | flat | diverged | too short


def summarize_curve(name: str, points: Sequence[tuple[int, float]], direction: str | None = "min",
                    tolerance: float = 0.01) -> CurveSummary:
    """Summarize ``points`` [(step, value), ...]. The trend compares the mean of the last quarter
    with the quarter before it: a relative change beyond ``tolerance`` is a trend, named
    improving/worsening when ``direction`` says which way is better, rising/falling when None
    (then ``best`` is NaN)."""
    way = None if direction is None else Direction.of(direction, "summarize_curve", "direction")
    values = [v for _, v in points]
    finite = [(s, v) for s, v in points if math.isfinite(v)]
    best_step, best = way.best(finite, key=lambda p: p[1]) if finite and way else (points[-1][0], math.nan)
    if not math.isfinite(values[-1]):
        trend = "diverged"
    elif len(finite) < 4:
        trend = "too short"
    else:
        q = max(1, len(finite) // 4)
        last = sum(v for _, v in finite[-q:]) / q
        before = sum(v for _, v in finite[-2 * q:-q]) / q
        change = (last - before) / max(abs(before), 1e-12)
        trend = "rising" if change > tolerance else "falling" if change < -tolerance else "flat"
        if way is not None and trend != "flat":
            trend = "improving" if (trend == "rising") == (way is Direction.MAX) else "worsening"
    return CurveSummary(name, len(points), values[0], best, best_step, values[-1], points[-1][0], trend)
