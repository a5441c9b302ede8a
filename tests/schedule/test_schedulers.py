"""Schedulers against hand-computed decisions, and the contract every scheduler keeps."""

import pytest

import tuneloop as tl
from tuneloop.schedule import Decision, schedulers

STOP, GO = Decision.STOP, Decision.CONTINUE


def test_asha_keeps_the_top_third_of_each_rung_hand_computed():
    # reduction_factor 3, min_resource 1: rung 0 is decided at step 1, rung 1 at step 3.
    asha = schedulers.create({"name": "asha", "reduction_factor": 3, "min_resource": 1}, mode="min")
    assert asha.on_report(0, 0, 5.0) == GO  # step 0 < first rung: no decision yet
    assert asha.on_report(0, 1, 1.0) == GO  # rung 0 holds [1.0]: fewer than 3, the best goes on
    assert asha.on_report(1, 1, 2.0) == STOP  # [1.0, 2.0]: only the best (1.0) goes on
    assert asha.on_report(2, 1, 0.5) == GO  # [0.5, 1.0, 2.0]: top 3 // 3 = 1 -> 0.5 goes on
    assert asha.on_report(3, 1, 0.9) == STOP  # [0.5, 0.9, 1.0, 2.0]: still only the top 1
    assert asha.on_report(4, 1, 0.7) == STOP
    assert asha.on_report(5, 1, 0.1) == GO  # six values: top 2 are 0.1 and 0.5
    assert asha.on_report(0, 2, 0.8) == GO  # between rungs: nothing to decide
    assert asha.on_report(0, 3, 0.8) == GO  # rung 1 holds [0.8]: goes on
    assert asha.on_report(2, 3, 0.9) == STOP  # rung 1 holds [0.8, 0.9]: only 0.8 goes on


def test_asha_in_max_mode_keeps_the_largest():
    asha = schedulers.create("asha", mode="max")
    assert asha.on_report(0, 1, 0.5) == GO
    assert asha.on_report(1, 1, 0.4) == STOP
    assert asha.on_report(2, 1, 0.6) == GO


def test_median_stops_trials_worse_than_the_median_at_the_same_step():
    median = schedulers.create({"name": "median", "n_startup_trials": 2}, mode="min")
    for trial_id, values in ((0, [1.0, 0.8]), (1, [2.0, 1.6])):
        for step, v in enumerate(values):
            assert median.on_report(trial_id, step, v) == GO  # still in its start-up phase
        median.on_result(trial_id, "completed", values[-1])
    # median at step 1 of the completed trials is (0.8 + 1.6) / 2 = 1.2
    assert median.on_report(2, 0, 1.4) == GO  # step 0 median is 1.5: better
    assert median.on_report(2, 1, 1.3) == STOP  # best so far 1.3 > 1.2
    assert median.on_report(3, 0, 1.0) == GO
    assert median.on_report(3, 1, 1.1) == GO  # 1.1 <= 1.2


@pytest.mark.parametrize("name", ["none", "median", "asha", "hyperband"])
def test_contract_non_finite_and_repeated_reports_never_crash(name):
    s = schedulers.create(name, mode="min")
    for trial_id in range(4):
        for step in range(4):
            assert s.on_report(trial_id, step, float(trial_id)) in (GO, STOP)
        assert s.on_report(trial_id, 3, float(trial_id)) in (GO, STOP)  # the same step again
        assert s.on_report(trial_id, 4, float("nan")) == GO  # divergence is the driver's call
        s.on_result(trial_id, "completed" if trial_id % 2 else "diverged", float(trial_id))


def test_none_never_stops():
    s = schedulers.create("none")
    assert all(s.on_report(i, step, 1e9 * i) == GO for i in range(10) for step in range(10))


def test_unknown_scheduler_lists_the_valid_ones():
    with pytest.raises(tl.ConfigError, match=r"Unknown scheduler 'pb'. Valid names: asha, hyperband, median, none, "
                                              r"pbt, sha\."):
        schedulers.create("pb")


def test_hyperband_stops_poor_trials_in_a_study(storage):
    import trial_functions as tf

    study = tl.Study("hb", tl.Space(x=tl.Float(-2.0, 2.0)), tf.quadratic, metric="loss", mode="min",
                     storage=storage, searcher="random")
    study.run(n_trials=30, seed=0, scheduler={"name": "hyperband", "max_resource": 3})
    states = [t.state for t in study.trials]
    assert states.count("pruned") > 0 and states.count("completed") > 0
    pruned = [t for t in study.trials if t.state == "pruned"]
    done = [t for t in study.trials if t.state == "completed"]
    # what it stops is, on average, worse than what it lets finish
    assert sum(abs(t.params["x"] - 0.5) for t in pruned) / len(pruned) > sum(abs(t.params["x"] - 0.5) for t in done) / len(done)
