"""The forecast scheduler: nothing stops before the completed trials calibrate the bounds; a trial
heading below the k-th best stops, a slow starter heading above it does not (where ASHA stops it),
and it works in both directions, through a real study, and on resume."""

import math

import numpy as np
import pytest
import trial_functions as tf

import tuneloop as tl
from tuneloop.forecast import Calibration
from tuneloop.schedule import Decision, ForecastScheduler, schedulers
from tuneloop.store import TrialState

STOP, GO = Decision.STOP, Decision.CONTINUE


def saturating(rng, steps):
    """The better the ceiling, the slower the start (a low learning rate that ends on top)."""
    ceiling = rng.uniform(0.5, 0.9)
    tau = 0.05 + (ceiling - 0.5) * 1.2 * rng.uniform(0.5, 1.0)
    t = (np.arange(steps) + 1) / steps
    return ceiling * (1 - np.exp(-t / tau)) + rng.normal(0, 0.01, steps)


def replay(spec, curves, mode="max"):
    """Each curve as a trial, one after another: (stopped flags, steps run)."""
    s = schedulers.create(spec, mode=mode)
    stopped, steps = [], 0
    for i, curve in enumerate(curves):
        s.on_launch(i, {})
        stop = False
        for step, value in enumerate(curve):
            steps += 1
            if s.on_report(i, step, float(value)) == STOP:
                stop = True
                break
        s.on_result(i, TrialState.PRUNED if stop else TrialState.COMPLETED, float(curve[step]))
        stopped.append(stop)
    return stopped, steps


@pytest.mark.slow  # hundreds of curve fits (4 s): .ci/run runs it in its second pytest call
def test_it_stops_few_eventual_top_three_where_asha_stops_most():
    """Over 6 studies of 40 trials x 20 steps: at confidence 0.9 at most 10% of the eventual top 3
    are stopped (the stated share), ASHA stops most of them, and forecasting still saves steps."""
    top3 = {"forecast": 0, "asha": 0}
    steps = {"forecast": 0, "none": 0}
    for seed in range(6):
        rng = np.random.default_rng(seed)
        curves = [saturating(rng, 20) for _ in range(40)]
        best = np.argsort([c[-1] for c in curves])[-3:]
        for name, spec in (("forecast", {"name": "forecast", "confidence": 0.9}), ("asha", "asha")):
            stopped, ran = replay(spec, curves)
            top3[name] += sum(stopped[j] for j in best)
            steps[name] = steps.get(name, 0) + ran
        steps["none"] += 40 * 20
    assert top3["forecast"] <= math.floor(0.1 * 18)
    assert top3["asha"] >= 9
    assert steps["forecast"] < 0.85 * steps["none"]


def test_nothing_stops_before_enough_trials_completed_to_calibrate():
    s = schedulers.create({"name": "forecast", "confidence": 0.9}, mode="max")
    good = [0.8 * (1 - math.exp(-(k + 1) / 4)) for k in range(20)]
    for i in range(Calibration.needed(0.9) - 1):  # 8 completed: one short of a calibrated bound
        s.on_launch(i, {})
        assert all(s.on_report(i, k, v) == GO for k, v in enumerate(good))
        s.on_result(i, TrialState.COMPLETED, good[-1])
    s.on_launch(99, {})
    assert all(s.on_report(99, k, 0.1) == GO for k in range(19))  # hopeless, but nothing to calibrate on yet
    s.on_result(99, TrialState.COMPLETED, 0.1)
    s.on_launch(100, {})  # now 9 completed: the next hopeless trial stops at its 5th report
    decisions = [s.on_report(100, k, 0.1) for k in range(5)]
    assert decisions == [GO, GO, GO, GO, STOP]
    assert s.last[100].calibrated and s.last[100].high < s.kth_best()


def test_a_trial_already_better_than_the_kth_best_is_never_stopped():
    s = schedulers.create({"name": "forecast", "confidence": 0.9, "k": 1}, mode="max")
    for i in range(10):
        s.on_launch(i, {})
        for k in range(10):
            s.on_report(i, k, 0.5 + 0.01 * k)
        s.on_result(i, TrialState.COMPLETED, 0.59)
    s.on_launch(10, {})  # jumps above the best, then collapses: its best epoch already counts
    curve = [0.2, 0.2, 0.95, 0.2, 0.2, 0.2, 0.2, 0.2]
    assert all(s.on_report(10, k, v) == GO for k, v in enumerate(curve))


def test_minimizing_a_loss_stops_a_loss_heading_above_the_kth_best():
    s = schedulers.create({"name": "forecast", "confidence": 0.9}, mode="min")
    loss = [2.0 * math.exp(-(k + 1) / 3) + 0.2 for k in range(15)]
    for i in range(9):
        s.on_launch(i, {})
        for k, v in enumerate(loss):
            s.on_report(i, k, v + 0.01 * i)
        s.on_result(i, TrialState.COMPLETED, loss[-1] + 0.01 * i)
    s.on_launch(9, {})
    decisions = [s.on_report(9, k, v + 1.0) for k, v in enumerate(loss[:6])]  # the same shape, 1.0 higher
    assert STOP in decisions and s.last[9].low > s.kth_best()


def test_max_step_is_learned_from_completed_trials_or_given():
    learned = ForecastScheduler("max")
    assert learned.max_step is None
    learned.on_launch(0, {})
    for k in range(12):
        learned.on_report(0, k, 0.5)
    learned.on_result(0, TrialState.COMPLETED, 0.5)
    assert learned.max_step == 11
    given = schedulers.create({"name": "forecast", "max_step": 29}, mode="max")
    assert given.max_step == 29


@pytest.mark.parametrize("options, fragment", [
    ({"k": 0}, "'k' argument of forecast scheduler must be a whole number >= 1"),
    ({"confidence": 1.2}, "'confidence' argument"),
    ({"confidence": True}, "'confidence' argument"),
    ({"min_points": 3}, "'min_points' argument of forecast scheduler must be a whole number >= 5"),
    ({"max_step": "last"}, "'max_step' argument"),
    ({"patience": 3}, "Bad options for scheduler 'forecast'"),
])
def test_bad_options_say_what_is_expected(options, fragment):
    with pytest.raises(tl.ConfigError, match=fragment.replace("(", r"\(")):
        schedulers.create({"name": "forecast", **options}, mode="max")


def test_a_study_with_the_forecast_scheduler_prunes_and_resumes_with_its_calibration(storage):
    """Saturating curves whose ceiling grows with x: once 9 completed, trials heading low are
    pruned; a second run replays the stored trials into a new scheduler and prunes at once."""
    space = tl.Space(x=tl.Float(0.0, 1.0))
    study = tl.Study("fc", space, tf.saturating, metric="score", mode="max", budget={"epochs": 20},
                     storage=storage, searcher="random", seed=0)
    study.run(30, scheduler={"name": "forecast", "confidence": 0.9})
    trials = study.trials
    pruned = [t for t in trials if t.state == "pruned"]
    done = [t for t in trials if t.state == "completed"]
    assert len(pruned) >= 5 and len(done) >= 9
    assert all(t.number >= 9 for t in pruned)  # the first nine calibrate
    best3 = sorted((t.params["x"] for t in done), reverse=True)[:3]
    assert all(t.params["x"] < best3[-1] for t in pruned)  # the ceiling grows with x: nothing better was cut
    study.run(40, scheduler={"name": "forecast", "confidence": 0.9})
    later = [t for t in study.trials if t.number >= 30]
    assert any(t.state == "pruned" for t in later)  # calibrated from the stored trials, not from scratch


@pytest.mark.slow  # a study run twice (3 s): .ci/run runs it in its second pytest call
def test_a_resumed_study_replays_its_trials_without_forecasting_each_point(monkeypatch):
    """The driver replays every finished trial into a new scheduler: a thousand trials of 50 points
    must not run fifty thousand forecasts, and only the latest 100 curves calibrate."""
    import tuneloop.schedule._forecast as module

    calls = []
    real = module.forecast
    monkeypatch.setattr(module, "forecast", lambda *a, **k: calls.append(1) or real(*a, **k))
    s = schedulers.create({"name": "forecast", "confidence": 0.9}, mode="max")
    curve = [(k, 0.8 * (1 - math.exp(-(k + 1) / 10))) for k in range(50)]
    for i in range(1000):
        s.replay(i, {}, curve, TrialState.COMPLETED, curve[-1][1] + 1e-4 * (i % 7))
    assert not calls and s.max_step == 49
    s.on_launch(1000, {})
    decisions = [s.on_report(1000, k, 0.1) for k in range(5)]
    assert decisions[-1] == STOP and len(calls) == 1
    assert s.calibration.curves == 100


@pytest.mark.parametrize("mode, kth", [("max", 0.7), ("min", 0.8)])
def test_the_kth_best_is_counted_in_the_studys_direction(mode, kth):
    s = schedulers.create({"name": "forecast", "k": 3}, mode=mode)
    for i, value in enumerate([0.5, 0.9, 0.7, 0.8]):
        assert s.kth_best() is None or i >= 3
        s.on_launch(i, {})
        s.on_result(i, TrialState.COMPLETED, value)
    assert s.kth_best() == kth
