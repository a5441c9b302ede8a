"""A trial's learning-curve forecast, as the trial page draws it on its objective curve.

What a trial's objective curve is heading to at the study's final step (:mod:`tuneloop.forecast`),
with one-sided bounds at 95%, widened by how far the forecasts of the study's completed trials
missed (:class:`~tuneloop.forecast.Calibration`). Forecast trials: the running ones (a live
forecast, redrawn with each poll of the page) and the pruned ones (where the trial was heading
when it was stopped). A completed, failed or diverged trial has a final value of its own: none.

The final step is the study budget's ``epochs`` (one less for a loop that counts epochs from 0:
the completed trials' last step tells, else whether the curve starts at step 0), else the last
step the most recent completed trials reached. The calibration is built from the
30 most recently finished completed trials, each scored at 10 looks, and kept per study in a
small in-process cache keyed by (store, study, completed trials, newest completed trial): a page
that polls every two seconds recomputes it only when a trial completes. Only reads the store.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from tuneloop._validation import finite_float
from tuneloop.forecast import MIN_POINTS, Calibration, forecast
from tuneloop.store import Store, StudyRecord, TrialRecord, TrialState

CONFIDENCE = 0.95
CALIBRATE_ON = 30  # the most recent completed trials whose curves calibrate the interval
LOOKS = 10  # prefixes of each calibrating curve forecast and scored
FORECAST_STATES = (TrialState.RUNNING, TrialState.PRUNED)
"""Trials that get a forecast: running (live) and pruned (what it was heading to when stopped)."""

_CACHE_SIZE = 64
_cache: OrderedDict[tuple[Any, ...], tuple[Calibration, int | None]] = OrderedDict()
_lock = threading.Lock()
_building: dict[tuple[Any, ...], threading.Lock] = {}  # a key being computed: later callers wait for it


def _final_value(record: StudyRecord, t: TrialRecord) -> float | None:
    value = t.values.get(record.metric)
    if value is None and not record.objectives.multi:
        value = t.value
    return finite_float(value)


def _calibration(store: Store, record: StudyRecord) -> tuple[Calibration, float | None]:
    """The study's calibration and the last step its recent completed trials reached, cached until
    another trial completes (the key is one cheap query; one caller computes a missing entry while
    the others wait for it)."""
    key = (store.url, record.id, *store.completed_mark(record.id))
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
        building = _building.setdefault(key, threading.Lock())
    with building:
        with _lock:
            hit = _cache.get(key)
            if hit is not None:
                return hit
        done = store.trials(record.id, states=[TrialState.COMPLETED.value])
        recent = sorted(done, key=lambda t: (finite_float(t.finished_at) or 0.0, t.id))[-CALIBRATE_ON:]
        series = store.series([t.id for t in recent], names=[record.metric]) if recent else {}
        calibration, last = Calibration(), None
        for t in recent:
            points = series[t.id].get(record.metric, [])
            if points:
                end = max(s for s, _ in points)
                last = end if last is None else max(last, end)
            final = _final_value(record, t)
            if final is not None and len(points) > MIN_POINTS:
                calibration.add(points, final, looks=LOOKS)
        with _lock:
            _cache[key] = (calibration, last)
            _cache.move_to_end(key)
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
            _building.pop(key, None)
    return calibration, last


def _epochs(record: StudyRecord) -> int | None:
    budget = record.config.get("budget")
    epochs = finite_float(budget.get("epochs")) if isinstance(budget, dict) else None
    if epochs is None or epochs < 1 or epochs > 2**53:
        return None
    return int(epochs)


def trial_forecast(store: Store, record: StudyRecord, trial: TrialRecord,
                   points: Sequence[tuple[int, float]] | None = None) -> dict[str, Any] | None:
    """The forecast of ``trial``'s objective curve (``points``: as stored, read when not given) at
    the study's final step: ``Forecast.to_dict()`` and ``calibrated_on`` (the completed curves
    that calibrated it). None for a trial neither running nor pruned, one with fewer than 5
    finite points, a final step unknown or already reached."""
    if trial.state not in FORECAST_STATES:
        return None
    if points is None:
        points = store.series([trial.id], names=[record.metric])[trial.id].get(record.metric, [])
    if len(points) < MIN_POINTS:
        return None  # before the calibration is read: an early trial costs nothing
    calibration, last = _calibration(store, record)
    epochs = _epochs(record)
    if epochs is None:
        final = last
    elif last in (epochs - 1, epochs):
        final = last  # the completed trials show whether the loop counts epochs from 0 or from 1
    else:
        final = epochs - 1 if min(s for s, _ in points) == 0 else epochs  # counted from 0: ends at epochs - 1
    if final is None:
        return None
    f = forecast(points, final, confidence=CONFIDENCE, calibration=calibration)
    if f is None:
        return None
    return {**f.to_dict(), "calibrated_on": calibration.curves}


def forecast_view(store: Store, name: str, number: int) -> dict[str, Any] | None:
    """:func:`trial_forecast` of trial ``number`` of study ``name``."""
    record = store.require_study(name)
    return trial_forecast(store, record, store.trial(record.id, number))
