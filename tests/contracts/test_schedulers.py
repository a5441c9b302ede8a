"""The scheduler contract: every registered scheduler (sha and pbt included) answers reports with
Decision members, stops what is clearly worse, and declares what it needs (planners: checkpoints,
and a plan that runs out by itself). Hand-computed rungs for asha and median, and a hand-counted
plan for each planner. A new scheduler is tested by registering it."""

import math

import pytest

import tuneloop as tl
from tuneloop.schedule import Decision, Planner, Scheduler, schedulers
from tuneloop.search import Outcome, searchers
from tuneloop.store import TrialState

STOP, GO = Decision.STOP, Decision.CONTINUE
ALL = schedulers.names  # every registered scheduler
NEVER_STOPS = {"none"}  # every other scheduler that is not a planner must stop a clearly worse trial
SPACE = tl.Space(lr=tl.LogFloat(0.01, 1.0))


def planner(name):
    return bool(schedulers.declared(name, "checkpoints"))


@pytest.mark.parametrize("name", ALL)
def test_it_builds_what_its_name_declares(name):
    s = schedulers.create(name, mode="min")
    assert isinstance(s, Scheduler)
    for attribute in ("checkpoints", "ends_by_itself"):
        assert getattr(s, attribute) is schedulers.declared(name, attribute)
    assert isinstance(s, Planner) == s.checkpoints == planner(name)


@pytest.mark.parametrize("name", ALL)
def test_reports_are_answered_with_decisions_and_nan_or_repeats_never_crash(name):
    s = schedulers.create(name, mode="min")
    for trial_id in range(4):
        s.on_launch(trial_id, {"lr": 0.1})
        for step in range(4):
            assert type(s.on_report(trial_id, step, float(trial_id))) is Decision
        assert type(s.on_report(trial_id, 3, float(trial_id))) is Decision  # the same step again
        assert s.on_report(trial_id, 4, float("nan")) == GO  # divergence is the driver's call
        s.on_result(trial_id, TrialState.COMPLETED if trial_id % 2 else TrialState.DIVERGED, float(trial_id))


@pytest.mark.parametrize("name", [n for n in ALL if not planner(n)])
def test_a_clearly_worse_trial_is_stopped(name):
    """Twenty trials complete with losses near 0 (enough for the forecast's calibration at 0.95);
    ten more report 100 at every step."""
    s = schedulers.create(name, mode="min")
    for trial_id in range(20):
        s.on_launch(trial_id, {})
        for step in range(9):
            assert type(s.on_report(trial_id, step, 0.01 * trial_id + 1.0 / (step + 1))) is Decision
        s.on_result(trial_id, TrialState.COMPLETED, 0.01 * trial_id)
    stopped = 0
    for trial_id in range(20, 30):
        s.on_launch(trial_id, {})
        decisions = [s.on_report(trial_id, step, 100.0) for step in range(9)]
        stopped += STOP in decisions
        s.on_result(trial_id, TrialState.PRUNED if STOP in decisions else TrialState.COMPLETED, 100.0)
    if name in NEVER_STOPS:
        assert stopped == 0
    else:
        assert stopped >= 1 if name == "hyperband" else stopped == 10  # hyperband's last bracket never stops


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
        median.on_result(trial_id, TrialState.COMPLETED, values[-1])
    # median at step 1 of the completed trials is (0.8 + 1.6) / 2 = 1.2
    assert median.on_report(2, 0, 1.4) == GO  # step 0 median is 1.5: better
    assert median.on_report(2, 1, 1.3) == STOP  # best so far 1.3 > 1.2
    assert median.on_report(3, 0, 1.0) == GO
    assert median.on_report(3, 1, 1.1) == GO  # 1.1 <= 1.2


def test_none_never_stops():
    s = schedulers.create("none")
    assert all(s.on_report(i, step, 1e9 * i) == GO for i in range(10) for step in range(10))


# -- planners ---------------------------------------------------------------------------------
def play(plan, value):
    """Run a plan to its end without a driver: each generation is asked for whole, then every
    trial completes with ``value(params, budget)``. Returns (number, proposal) in launch order."""
    launched = []
    while True:
        generation = plan.ask(100)
        if not generation:
            assert not plan.waiting  # nothing runs, so nothing is awaited: the plan is over
            return launched
        assert plan.waiting  # the generation runs: the next one waits for it
        for p in generation:
            number = len(launched)
            launched.append((number, p))
            v = value(p.params, p.budget)
            plan.tell(Outcome(p.params, TrialState.COMPLETED, v, [(p.budget["epochs"], v)], p.token, number, p.lineage))


PLANS = {  # name -> (options, budget epochs, hand-counted trials per generation, epochs per generation)
    "sha": ({"reduction_factor": 3}, 9, [9, 3, 1], [1, 3, 9]),
    "pbt": ({"population": 4, "interval": 3}, 12, [4, 4, 4, 4], [3, 6, 9, 12]),
}


@pytest.mark.parametrize("name", [n for n in ALL if planner(n)])
def test_a_planner_declares_checkpoints_and_plans_generations_that_run_out(name):
    assert name in PLANS, f"add the hand-counted plan of planner {name!r} to PLANS"
    options, epochs, sizes, budgets = PLANS[name]
    s = schedulers.create({"name": name, **options}, mode="max")
    assert s.checkpoints and s.ends_by_itself
    assert all(s.on_report(0, step, -1.0) == GO for step in range(5))  # segments are never cut short
    plan = s.plan(searchers.create("random", space=SPACE, seed=0), SPACE, {"epochs": epochs}, 0)
    launched = play(plan, lambda params, budget: -abs(params["lr"] - 0.3) * budget["epochs"])
    by_generation = {}
    for number, p in launched:
        by_generation.setdefault(p.lineage.generation, []).append((number, p))
    assert [len(by_generation[g]) for g in sorted(by_generation)] == sizes
    numbers = {number: p for number, p in launched}
    for g, trials in by_generation.items():
        assert {p.budget["epochs"] for _, p in trials} == {budgets[g]}
        for _, p in trials:
            SPACE.validate(p.params)
            if g == 0:
                assert p.lineage.event == "start" and p.resume_from is None
            else:  # continued from a trial of the generation before: its checkpoint
                parent = numbers[p.resume_from]
                assert parent.lineage.generation == g - 1 and p.lineage.event in ("promote", "continue", "exploit")


def test_sha_promotes_the_best_third_hand_computed():
    s = schedulers.create({"name": "sha", "reduction_factor": 3}, mode="max")
    plan = s.plan(searchers.create("random", space=SPACE, seed=1), SPACE, {"epochs": 9}, 0)
    launched = play(plan, lambda params, budget: -abs(params["lr"] - 0.3))
    first = sorted((p for _, p in launched[:9]), key=lambda p: -abs(p.params["lr"] - 0.3), reverse=True)
    assert {p.params["lr"] for _, p in launched[9:12]} == {p.params["lr"] for p in first[:3]}
    assert launched[12][1].params["lr"] == first[0].params["lr"]


@pytest.mark.parametrize("name", [n for n in ALL if planner(n)])
def test_a_planner_needs_a_budget_in_epochs(name):
    with pytest.raises(tl.ConfigError, match="budget in epochs"):
        schedulers.create(name).plan(searchers.create("random", space=SPACE, seed=0), SPACE, {}, 0)


@pytest.mark.parametrize("name", [n for n in ALL if not planner(n)])
def test_other_schedulers_leave_the_searcher_as_it_is(name):
    searcher = searchers.create("random", space=SPACE, seed=0)
    assert schedulers.create(name).plan(searcher, SPACE, {"epochs": 3}, 0) is searcher


def test_unknown_scheduler_lists_the_valid_ones():
    with pytest.raises(tl.ConfigError, match=r"Unknown scheduler 'pb'. Valid names: asha, forecast, hyperband, median, none, "
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
    assert not math.isnan(study.best.value)
