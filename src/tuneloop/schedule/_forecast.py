"""The ``forecast`` scheduler: stop a trial once its forecast final value, at the confidence the
user sets, cannot reach the current k-th best.

At each report the trial's curve so far is forecast to the final step (:mod:`tuneloop.forecast`:
an average of curve families, its interval widened to the coverage that completed trials'
forecasts showed at the same curve length). The trial stops when even the optimistic bound
(``high`` when maximizing, ``low`` when minimizing) is worse than the k-th best final value of the
completed trials, and its best value so far is too: a trial whose value is its best epoch keeps
what it already reached. Nothing stops before ``k`` trials completed, before ``min_points``
reports, or at the final step.

Unlike ASHA and the median rule, which compare trials at the same step, it judges where a trial
is heading, so a slow starter that would overtake (a low learning rate, a long warm-up) is not cut
at the first rung; the price is that it decides later (``min_points`` reports at least).
"""

from __future__ import annotations

import bisect
import collections
import math
from collections.abc import Sequence
from typing import Any

from tuneloop.direction import Direction
from tuneloop.forecast import MIN_POINTS, Calibration, Forecast, forecast
from tuneloop.schedule._base import Decision, Scheduler, schedulers
from tuneloop.store import TrialState

CALIBRATE_ON = 100
"""The latest completed trials whose curves calibrate the bounds (a conformal quantile needs far fewer)."""
LOOKS = 40
"""Looks scored on each calibrating curve, evenly spaced (every look of a curve up to 45 reports)."""


class ForecastScheduler(Scheduler):
    """Stops a trial whose forecast bound lies below the k-th best completed trial."""

    def __init__(self, mode: Direction | str = Direction.MIN, *, k: int = 3, confidence: float = 0.95,
                 min_points: int = MIN_POINTS, max_step: int | str = "auto") -> None:
        from tuneloop._validation import fail

        self.direction = Direction.of(mode, "forecast scheduler")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise fail("k", "forecast scheduler", "a whole number >= 1", k)
        if isinstance(confidence, bool) or not isinstance(confidence, int | float) or not 0.5 < confidence < 1:
            raise fail("confidence", "forecast scheduler", "a number between 0.5 and 1 (e.g. 0.95)", confidence)
        if isinstance(min_points, bool) or not isinstance(min_points, int) or min_points < MIN_POINTS:
            raise fail("min_points", "forecast scheduler", f"a whole number >= {MIN_POINTS}", min_points)
        if max_step != "auto" and (isinstance(max_step, bool) or not isinstance(max_step, int) or max_step < 1):
            raise fail("max_step", "forecast scheduler", "'auto' or the last step a trial reports", max_step)
        self.k, self.confidence, self.min_points = k, float(confidence), min_points
        self.max_step: int | None = None if max_step == "auto" else int(max_step)
        self._learn_max = max_step == "auto"
        self._calibration = Calibration(limit=CALIBRATE_ON)
        self._pending: collections.deque[tuple[list[tuple[int, float]], float]] = collections.deque(maxlen=CALIBRATE_ON)
        self._curves: dict[int, dict[int, float]] = {}
        self._finals: list[float] = []  # completed trials' values, best first (kept sorted: read at every report)
        self.last: dict[int, Forecast] = {}
        """Each running trial's latest forecast (what the decision was based on)."""

    def kth_best(self) -> float | None:
        """The k-th best final value of the completed trials, None before k completed."""
        return self._finals[self.k - 1] if len(self._finals) >= self.k else None

    @property
    def calibration(self) -> Calibration:
        """The completed trials' forecast misses, scored when a decision first needs them (a resumed
        study's thousand replayed trials cost nothing until then, and only the latest count)."""
        while self._pending:
            points, value = self._pending.popleft()
            self._calibration.add(points, value, looks=LOOKS)
        return self._calibration

    def on_launch(self, trial_id: int, params: dict[str, Any]) -> None:
        self._curves.setdefault(trial_id, {})  # a trial run again keeps the reports it already made

    def replay(self, trial_id: int, params: dict[str, Any], curve: Sequence[tuple[int, float]], state: str,
               value: float | None) -> None:
        """A finished trial: its points recorded without a forecast at each (no decision is asked)."""
        points = self._curves.setdefault(trial_id, {})
        for step, point in curve:
            if math.isfinite(point):
                points.setdefault(step, float(point))
        self.on_result(trial_id, state, value)

    def on_report(self, trial_id: int, step: int, value: float) -> Decision:
        curve = self._curves.setdefault(trial_id, {})
        if not math.isfinite(value) or step in curve:
            return Decision.CONTINUE  # divergence is the driver's call; a repeated step is ignored
        curve[step] = float(value)
        threshold = self.kth_best()
        if threshold is None or self.max_step is None or len(curve) < self.min_points or step >= self.max_step:
            return Decision.CONTINUE
        points = sorted(curve.items())
        f = forecast(points, self.max_step, confidence=self.confidence, calibration=self.calibration)
        if f is None or not f.calibrated:
            return Decision.CONTINUE  # not enough completed trials yet to know how far forecasts miss
        self.last[trial_id] = f
        best_so_far = self.direction.best(v for _, v in points)
        bound = f.high if self.direction is Direction.MAX else f.low
        hopeless = self.direction.better(threshold, bound) and self.direction.better(threshold, best_so_far)
        return Decision.STOP if hopeless else Decision.CONTINUE

    def on_result(self, trial_id: int, state: str, value: float | None) -> None:
        curve = self._curves.pop(trial_id, None)
        self.last.pop(trial_id, None)
        if state != TrialState.COMPLETED or value is None or not math.isfinite(value):
            return
        bisect.insort(self._finals, float(value), key=lambda v: self.direction.sign * v)
        if curve:
            last = max(curve)
            if self._learn_max and (self.max_step is None or last > self.max_step):
                self.max_step = last
            self._pending.append((sorted(curve.items()), float(value)))


@schedulers.register("forecast", ForecastScheduler)
def _make_forecast(options: dict[str, Any], mode: Direction | str = Direction.MIN, **_: Any) -> ForecastScheduler:
    """Stop a trial when its learning-curve forecast, at ``confidence`` (0.95), cannot reach the
    ``k``-th (3) best completed trial; decides from ``min_points`` (5) reports on; ``max_step``
    is the last step a trial reports ("auto": learned from the completed trials)."""
    return ForecastScheduler(mode, **options)
