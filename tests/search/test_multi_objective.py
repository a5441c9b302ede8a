"""Multi-objective studies end to end: searchers against random search on known fronts, constraints
that keep infeasible trials out of every answer, schedulers judging a weighted sum, resumed and
concurrent runs, and ask/tell with several objectives. Real SQLite stores, real Study runs."""

from __future__ import annotations

import statistics
import threading

import pytest
import trial_functions as tf

import tuneloop as tl
from tuneloop.objectives import Objectives, dominates
from tuneloop.picking import pick_all

MIN_MIN = {"f1": "min", "f2": "min"}


def zdt_space(dims: int) -> tl.Space:
    return tl.Space(**{f"x{i}": tl.Float(0.0, 1.0) for i in range(dims)})


# (trial function, space, constraints, reference point): ZDT's reference sits at f1 = 1.1, f2 = 11 (f2 reaches 10
# at the corners of the box); BNH's at the worst corner of its feasible region's objective box, plus a margin.
PROBLEMS = {
    "zdt1": (tf.zdt1, zdt_space(4), None, [1.1, 11.0]),
    "zdt2": (tf.zdt2, zdt_space(4), None, [1.1, 11.0]),
    "bnh": (tf.bnh, tl.Space(x=tl.Float(0.0, 5.0), y=tl.Float(0.0, 3.0)), {"c1": ("<=", 25.0), "c2": (">=", 7.7)},
            [140.0, 55.0]),
}


def hypervolumes(problem: str, searcher, seeds, n: int, storage: str) -> list[float]:
    """The hypervolume of each seed's study after ``n`` trials (feasible trials only)."""
    fn, space, constraints, ref = PROBLEMS[problem]
    out = []
    for seed in seeds:
        name = f"{problem}-{searcher if isinstance(searcher, str) else searcher['name']}-{seed}"
        study = tl.Study(name, space, fn, objectives=MIN_MIN, constraints=constraints, storage=storage,
                         searcher=searcher)
        study.run(n_trials=n, seed=seed)
        trials = study.trials
        assert len(trials) == n and all(t.state == "completed" for t in trials), [t.error for t in trials]
        out.append(study.objectives.hypervolume(trials, ref))
    return out


def assert_beats_random(problem: str, searcher, n: int, seeds, margin: float, storage: str) -> None:
    ours = statistics.median(hypervolumes(problem, searcher, seeds, n, storage))
    rand = statistics.median(hypervolumes(problem, "random", seeds, n, storage))
    assert ours > rand + margin, f"{searcher} on {problem}: median hypervolume {ours:.3f}, random {rand:.3f}"


# Margins are about a third of the gap measured with these seeds (tpe: zdt1 after 30 trials 10.7 against 9.1 for
# random search; bnh after 40, 5750 against 5660), so the tests fail when the searcher stops learning from both
# objectives (or from the violations), not on noise.
def test_tpe_beats_random_search_on_zdt1(storage):
    assert_beats_random("zdt1", "tpe", n=30, seeds=range(3), margin=0.5, storage=storage)


def test_tpe_beats_random_search_on_a_constrained_problem(storage):
    """BNH with its two constraints: the searcher is told each trial's violations (Optuna's per-trial constraints)."""
    assert_beats_random("bnh", "tpe", n=40, seeds=range(3), margin=30.0, storage=storage)


@pytest.mark.slow
@pytest.mark.parametrize(("problem", "searcher", "n", "margin"), [
    ("zdt1", "tpe", 60, 0.5), ("zdt2", "tpe", 60, 0.5), ("bnh", "tpe", 60, 30.0),
    ("zdt1", {"name": "nsga2", "population_size": 10}, 100, 0.3),
    ("zdt2", {"name": "nsga2", "population_size": 10}, 100, 0.3),
    ("zdt1", "gp", 30, 0.5),
], ids=["tpe-zdt1", "tpe-zdt2", "tpe-bnh", "nsga2-zdt1", "nsga2-zdt2", "gp-zdt1"])
def test_each_multi_objective_searcher_beats_random_search(problem, searcher, n, margin, storage):
    """NSGA-II needs generations: with 10 per generation it beats random search on ZDT by 100 trials,
    not by 40; on BNH it does not beat random search by 100 (Optuna's own NSGAIISampler scores the same:
    benchmarks/multi_objective.py). GP is slow (about a second per trial at 30, more with constraints)."""
    seeds = range(3) if searcher == "gp" else range(5)
    assert_beats_random(problem, searcher, n=n, seeds=seeds, margin=margin, storage=storage)


# -- constraints ------------------------------------------------------------------------------------
def test_infeasible_trials_never_reach_best_front_or_pick(storage):
    """cost <= 0.1 keeps a tenth of the space, and the best acc of all trials is infeasible."""
    study = tl.Study("narrow", tl.Space(x=tl.Float(0.0, 1.0), y=tl.Float(0.0, 1.0)), tf.mostly_infeasible,
                     objectives={"acc": "max", "cost": "min"}, constraints={"cost": ("<=", 0.1)}, storage=storage,
                     searcher="random")
    study.run(n_trials=30, seed=0)
    trials = study.trials
    feasible = [t for t in trials if t.values["cost"] <= 0.1]
    assert 0 < len(feasible) < len(trials) // 2  # most of the space is infeasible
    assert max(t.values["acc"] for t in trials) > max(t.values["acc"] for t in feasible)
    assert study.best.values["cost"] <= 0.1
    assert study.best.values["acc"] == max(t.values["acc"] for t in feasible)
    assert study.best.value == study.best.values["acc"]  # the stored value is the primary objective
    assert study.front and all(t.values["cost"] <= 0.1 for t in study.front)
    assert all(t.values["cost"] <= 0.1 for t in pick_all(study.front, "max acc"))
    assert study.pick("min cost").values["cost"] <= 0.1
    ranked = study.objectives.ranked(trials)
    assert [t.values["cost"] <= 0.1 for t in ranked] == [True] * len(feasible) + [False] * (len(trials) - len(feasible))


def test_best_front_and_pick_when_no_trial_is_feasible(storage):
    study = tl.Study("never", tl.Space(x=tl.Float(0.0, 1.0)), tf.mostly_infeasible,
                     objectives={"acc": "max", "cost": "min"}, constraints={"cost": ("<=", -1.0)}, storage=storage,
                     searcher="random")
    study.run(n_trials=5, seed=0)
    assert {t.state for t in study.trials} == {"completed"}  # infeasible trials still complete: they are data
    with pytest.raises(tl.TuneloopError) as info:
        study.best  # noqa: B018
    message = str(info.value)
    assert "no feasible trial" in message and "cost <= -1" in message and "\n" not in message
    assert study.front == []
    with pytest.raises(tl.TuneloopError, match="no feasible completed trial"):
        study.pick("max acc")


# -- schedulers, resuming, several drivers ----------------------------------------------------------
def test_asha_judging_a_weighted_sum_prunes_the_worse_sums(storage):
    """prune_on weighs acc against cost: ASHA compares acc - 2 * cost, which falls with x (acc alone rises
    with it), so the trials it stops are the large-x ones."""
    study = tl.Study("asha-mo", tl.Space(x=tl.Float(0.0, 1.0)), tf.acc_cost_curve,
                     objectives={"acc": "max", "cost": "min"}, prune_on={"acc": 1.0, "cost": 2.0}, storage=storage,
                     searcher="random", scheduler={"name": "asha", "min_resource": 1, "reduction_factor": 2})
    assert str(study.objectives.judged) == "1·acc - 2·cost (higher is better)"
    study.run(n_trials=16, seed=0)
    trials = study.trials
    pruned = [t for t in trials if t.state == "pruned"]
    done = [t for t in trials if t.state == "completed"]
    assert pruned and done
    judged = study.objectives.judged.score
    assert statistics.median(t.params["x"] for t in pruned) > statistics.median(t.params["x"] for t in done)
    assert all(judged(t.values) is not None for t in pruned)  # each pruned trial was judged on the sum
    assert all(t in trials for t in study.front) and all(t.state == "completed" for t in study.front)


def test_a_resumed_study_keeps_its_front_and_replays_constraints(storage):
    """A second run continues the first one's trials: the searcher replays them (two objectives and
    their violations) and the front only moves forward."""
    def study():
        return tl.Study("resume", zdt_space(3), tf.zdt1, objectives=MIN_MIN, constraints={"f1": (">=", 0.1)},
                        storage=storage, searcher="tpe")

    first = study()
    first.run(n_trials=12, seed=1)
    front = first.front
    hv = first.objectives.hypervolume(first.trials, [1.1, 11.0])
    second = study()
    second.run(n_trials=24)
    trials = second.trials
    assert [t.number for t in trials] == list(range(24))  # none lost, none duplicated
    assert all(t.state == "completed" for t in trials)
    assert second.objectives.hypervolume(trials, [1.1, 11.0]) >= hv
    for old in front:  # each earlier front member is still on the front, or a later trial beats it
        loss = second.objectives.loss(old.values)
        assert old.number in {t.number for t in second.front} or any(
            dominates(second.objectives.loss(t.values), loss) for t in second.front)
    assert all(t.values["f1"] >= 0.1 for t in second.front)


@pytest.mark.slow
def test_two_drivers_share_one_multi_objective_study_without_losing_or_repeating_trials(storage):
    """Two drivers, each with two worker processes, run one constrained two-objective study to 24 trials."""
    def run():
        tl.Study("shared", zdt_space(3), tf.zdt1, objectives=MIN_MIN, constraints={"f1": (">=", 0.1)},
                 storage=storage, searcher="tpe").run(n_trials=24, executor="processes", workers=2, seed=5)

    errors = []

    def guarded():
        try:
            run()
        except Exception as e:  # noqa: BLE001 - reported below, with the thread's cause
            errors.append(e)

    threads = [threading.Thread(target=guarded) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and not any(t.is_alive() for t in threads), errors
    study = tl.Study("shared", zdt_space(3), tf.zdt1, objectives=MIN_MIN, constraints={"f1": (">=", 0.1)},
                     storage=storage)
    trials = study.trials
    assert [t.number for t in trials] == list(range(24))
    assert all(t.state == "completed" for t in trials), [t.error for t in trials]
    assert study.front == Objectives.of(objectives=MIN_MIN, constraints={"f1": (">=", 0.1)}).front(trials)


# -- ask and tell -----------------------------------------------------------------------------------
def test_ask_tell_with_two_objectives(storage):
    study = tl.Study("asked", tl.Space(x=tl.Float(0.0, 1.0)), objectives={"acc": "max", "ms": "min"},
                     constraints={"ms": ("<=", 3.0)}, storage=storage, searcher="tpe")
    for _ in range(6):
        trial = study.ask()
        x = trial.params.x
        study.tell(trial, {"acc": x, "ms": 4.0 * x})
    trial = study.ask()
    with pytest.raises(tl.ConfigError) as info:
        study.tell(trial, {"acc": 0.5})
    assert "'ms'" in str(info.value) and "\n" not in str(info.value)
    record = study.tell(trial, {"acc": 0.5, "ms": 1.0})  # the same trial, told again with both
    assert record.state == "completed" and record.value == 0.5 and record.values["ms"] == 1.0
    again = tl.Study.stored("asked", storage)  # another process, from the store alone
    assert again.objectives == study.objectives
    assert [t.number for t in again.front] == [t.number for t in study.front]
    assert all(t.values["ms"] <= 3.0 for t in again.front) and again.best.values["ms"] <= 3.0
    bounded = tl.Study("bounded", tl.Space(x=tl.Float(0.0, 1.0)), metric="acc", mode="max",
                       constraints={"mb": ("<=", 1.0)}, storage=storage)
    trial = bounded.ask()
    with pytest.raises(tl.ConfigError, match="needs its constrained metric 'mb'"):  # refused before it is stored
        bounded.tell(trial, {"acc": 0.5})
    assert bounded.tell(trial, {"acc": 0.5, "mb": 0.5}).state == "completed"
