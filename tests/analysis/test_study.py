"""Study plot data against answers known by construction (and scipy for the interval)."""

import math

import pytest
from scipy import stats

import tuneloop as tl
from tuneloop.analysis import band, history, importance, param_effects, seed_groups
from tuneloop.store import TrialRecord


def record(number, params, value, state="completed"):
    return TrialRecord(id=number + 1, number=number, state=state, params=params, seed=number, attempt=0,
                       value=value, values={}, error=None, created_at=0.0, started_at=0.0, finished_at=1.0)


SPACE = tl.Space(lr=tl.LogFloat(1e-4, 1e-1), width=tl.Int(8, 64))


def trials_where_best_lr_is(edge):
    """20 trials; the three best sit at one end of the lr range (in log scale), the rest inside."""
    lrs = [10 ** -3.0 + i * 1e-4 for i in range(17)] + ([0.09, 0.095, 0.1] if edge == "high" else [1e-4, 1.1e-4, 1.2e-4])
    return [record(i, {"lr": lr, "width": 16}, value=(0.1 if i >= 17 else 1.0 + i)) for i, lr in enumerate(lrs)]


def test_best_trials_crowding_a_bound_get_a_warning_saying_which_way():
    up = {e["name"]: e for e in param_effects(SPACE, trials_where_best_lr_is("high"), "min")}
    assert up["lr"]["warning"] == ("the best region crowds the upper bound of lr (all 3 best trials lie in the outer "
                                   "10% of the range): expand lr above 0.1 (tuneloop refine)")
    down = {e["name"]: e for e in param_effects(SPACE, trials_where_best_lr_is("low"), "min")}
    assert down["lr"]["warning"].endswith("expand lr below 0.0001 (tuneloop refine)")
    assert up["width"]["warning"] is None  # all at 16: inside the range
    assert up["lr"]["log"] is True and (up["lr"]["low"], up["lr"]["high"]) == (1e-4, 1e-1)


def test_history_tracks_the_best_completed_value():
    trials = [record(0, {}, 3.0), record(1, {}, 1.0, "pruned"), record(2, {}, 2.0), record(3, {}, None, "failed"),
              record(4, {}, 2.5)]
    h = history(trials, "min")
    assert h["number"] == [0, 1, 2, 4] and h["best"] == [3.0, 3.0, 2.0, 2.0]  # pruned values never count as best
    assert history(trials, "max")["best"] == [3.0, 3.0, 3.0, 3.0]


def test_band_matches_scipys_t_interval():
    curves = [[(0, 1.0), (1, 0.5)], [(0, 2.0), (1, 0.7)], [(0, 1.5), (1, 0.6)], [(0, 1.2)]]
    b = band(curves[:3])
    lo, hi = stats.t.interval(0.95, 2, loc=1.5, scale=stats.sem([1.0, 2.0, 1.5]))
    assert b["step"] == [0, 1] and b["mean"][0] == pytest.approx(1.5)
    assert (b["low"][0], b["high"][0]) == (pytest.approx(lo), pytest.approx(hi))
    assert band(curves)["step"] == [0]  # steps every curve reached


def test_seed_groups_need_identical_parameters():
    trials = [record(0, {"a": 1}, 1.0), record(1, {"a": 1}, 2.0), record(2, {"a": 2}, 1.0), record(3, {"a": 1}, None, "failed")]
    assert [g["trials"] for g in seed_groups(trials)] == [[0, 1]]


def test_importance_finds_the_parameter_that_matters():
    trials = [record(i, {"lr": 10 ** (-4 + 3 * (i % 10) / 9), "width": 8 + (i * 7) % 57},
                     value=(math.log10(10 ** (-4 + 3 * (i % 10) / 9)) + 2.5) ** 2) for i in range(30)]
    imp = importance(SPACE, trials, "min")
    assert imp["lr"] > 0.8 and imp["lr"] + imp["width"] == pytest.approx(1.0)
    assert importance(SPACE, trials[:4], "min") == {}
