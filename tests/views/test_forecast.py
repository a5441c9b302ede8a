"""The trial page's learning-curve forecast: a running trial's objective curve forecast to the
study's final step, calibrated on the completed trials, cached per study between polls."""

from __future__ import annotations

import json
import math
import random

import pytest

import tuneloop as tl
from tuneloop.forecast import Calibration
from tuneloop.store import Store
from tuneloop.views import forecast_view, trial_forecast, trial_view

EPOCHS = 30


def _curve(rng: random.Random) -> list[float]:
    """A saturating accuracy curve over steps 1..EPOCHS with a little noise."""
    top, drop, rate = rng.uniform(0.8, 0.95), rng.uniform(0.3, 0.6), rng.uniform(0.1, 0.3)
    return [top - drop * math.exp(-rate * s) + rng.gauss(0.0, 0.002) for s in range(1, EPOCHS + 1)]


def _add(store: Store, study_id: int, number: int, values: list[float], state: str | None,
         start: int = 1) -> int:
    trial = store.create_trial(study_id, number, {"x": number / 100}, seed=number)
    store.add_points([(trial, 0, start + i, "val_acc", v) for i, v in enumerate(values)])
    if state is not None:
        final = values[-1]
        store.finish_trial(trial, state, final, {"val_acc": final})
    return trial


@pytest.fixture
def study(storage):
    """Study "f" (max val_acc, 30 epochs): 24 completed saturating curves, then trial 24 running with
    12 points (its full curve in ``full``), 25 running with 4, 26 pruned after 10."""
    rng = random.Random(7)
    with Store(storage) as store:
        record = store.create_study("f", "val_acc", "max", tl.Space(x=tl.Float(0.0, 1.0)),
                                    {"budget": {"epochs": EPOCHS}})
        for number in range(24):
            _add(store, record.id, number, _curve(rng), "completed")
        full = _curve(rng)
        _add(store, record.id, 24, full[:12], None)
        _add(store, record.id, 25, _curve(rng)[:4], None)
        _add(store, record.id, 26, _curve(rng)[:10], "pruned")
        store.full = full
        yield store


def test_a_running_trial_is_forecast_to_the_final_step_with_an_interval_that_holds(study):
    f = forecast_view(study, "f", 24)
    assert f is not None and f["step"] == EPOCHS and f["confidence"] == 0.95
    assert f["calibrated"] and f["calibrated_on"] == 24  # every completed trial calibrates it
    assert f["low"] <= study.full[-1] <= f["high"]
    assert f["low"] <= f["value"] <= f["high"]


def test_too_short_a_curve_or_a_completed_trial_has_no_forecast(study):
    assert forecast_view(study, "f", 25) is None  # 4 points: fewer than forecast.MIN_POINTS
    assert forecast_view(study, "f", 3) is None  # completed: its final value is its own


def test_a_pruned_trial_shows_where_it_was_heading(study):
    f = forecast_view(study, "f", 26)
    assert f is not None and f["step"] == EPOCHS and f["calibrated_on"] == 24


def test_the_trial_view_carries_the_forecast_as_strict_json(study):
    view = trial_view(study, "f", 24)
    assert view["forecast"] == forecast_view(study, "f", 24)
    json.dumps(view, allow_nan=False)
    assert trial_view(study, "f", 3)["forecast"] is None


def test_the_calibration_is_cached_until_another_trial_completes(study, monkeypatch):
    calls = []
    add = Calibration.add
    monkeypatch.setattr(Calibration, "add", lambda self, *a, **k: (calls.append(1), add(self, *a, **k))[1])
    record = study.require_study("f")
    running = study.trial(record.id, 24)
    first = trial_forecast(study, record, running)
    assert len(calls) == 24
    assert trial_forecast(study, record, running) == first and len(calls) == 24  # a poll: served from the cache
    assert forecast_view(study, "f", 26) is not None and len(calls) == 24  # same study, another trial: cached too
    _add(study, record.id, 27, _curve(random.Random(1)), "completed")
    assert trial_forecast(study, record, running)["calibrated_on"] == 25 and len(calls) == 49


def test_the_calibration_takes_the_30_most_recent_completed_trials(storage):
    rng = random.Random(3)
    with Store(storage) as store:
        record = store.create_study("g", "val_acc", "max", tl.Space(x=tl.Float(0.0, 1.0)), {})
        for number in range(33):
            _add(store, record.id, number, _curve(rng), "completed")
        _add(store, record.id, 33, _curve(rng)[:8], None)
        f = forecast_view(store, "g", 33)
        assert f is not None and f["calibrated_on"] == 30
        assert f["step"] == EPOCHS  # no budget: the last step the completed trials reached


def test_no_budget_and_no_completed_trial_means_no_final_step(storage):
    with Store(storage) as store:
        record = store.create_study("h", "val_acc", "max", tl.Space(x=tl.Float(0.0, 1.0)), {})
        _add(store, record.id, 0, _curve(random.Random(0))[:10], None)
        assert forecast_view(store, "h", 0) is None


def test_a_loop_counting_epochs_from_zero_is_forecast_to_epochs_minus_one(storage):
    rng = random.Random(5)
    with Store(storage) as store:
        record = store.create_study("z", "val_acc", "max", tl.Space(x=tl.Float(0.0, 1.0)),
                                    {"budget": {"epochs": EPOCHS}})
        _add(store, record.id, 0, _curve(rng)[:10], None, start=0)  # steps 0..9 of range(30)
        f = forecast_view(store, "z", 0)
        assert f is not None and f["step"] == EPOCHS - 1 and not f["calibrated"] and f["calibrated_on"] == 0
        _add(store, record.id, 1, _curve(rng)[:12], None, start=EPOCHS)  # already past the final step
        assert forecast_view(store, "z", 1) is None


def test_a_hostile_budget_or_value_gives_no_forecast_rather_than_an_error(storage):
    with Store(storage) as store:
        record = store.create_study("h", "val_acc", "max", tl.Space(x=tl.Float(0.0, 1.0)),
                                    {"budget": {"epochs": 10**400}})
        rng = random.Random(1)
        for number in range(3):
            trial = _add(store, record.id, number, _curve(rng), None)
            store.finish_trial(trial, "completed", None, {"val_acc": 10**400})
        _add(store, record.id, 3, _curve(rng)[:8], None)
        view = trial_view(store, "h", 3)
        json.dumps(view, allow_nan=False)
        assert view["forecast"] is None or math.isfinite(view["forecast"]["value"])
