"""Warm start: an earlier study's finished trials that fit the new space reach the searcher as
prior observations (marked as such in its Optuna study), are never this study's trials, and are
recorded in its config; a warm-started TPE round reaches a target sooner than a cold one."""

import statistics

import pytest

import tuneloop as tl
from tuneloop.errors import ConfigError
from tuneloop.search import OptunaSearcher

CENTRE = (1.5, -2.0, 0.5, 3.0)


def bowl(trial):
    """A 4-D quadratic with its minimum (0) at CENTRE."""
    return {"loss": sum((trial.params[f"x{i}"] - c) ** 2 for i, c in enumerate(CENTRE))}


def bowl_space(low=-5.0, high=5.0):
    return tl.Space({f"x{i}": tl.Float(low, high) for i in range(4)})


def plane(trial):
    return {"loss": trial.params["x"] + trial.params.get("y", 0.0)}


def test_priors_reach_the_searcher_but_are_never_this_studys_trials(storage):
    first = tl.Study("r1", tl.Space(x=tl.Float(-2.0, 2.0), y=tl.Float(-2.0, 2.0)), plane, metric="loss", mode="min",
                     storage=storage, searcher="random", seed=0)
    first.run(8)
    earlier = first.trials
    inside = [t for t in earlier if t.params["x"] >= 0.0]
    assert 0 < len(inside) < len(earlier)  # some of round 1 falls outside round 2's narrower space

    from optuna.samplers import TPESampler

    space = tl.Space(x=tl.Float(0.0, 2.0), y=tl.Float(-2.0, 2.0))
    searcher = OptunaSearcher(space, TPESampler(seed=1), "min")
    second = tl.Study("r2", space, plane, metric="loss", mode="min", storage=storage, searcher=searcher,
                      warm_start=["r1"])
    summary = second.run(3)

    assert summary.finished_total == 3 and [t.number for t in second.trials] == [0, 1, 2]  # only its own
    optuna_trials = searcher._study.trials
    priors = [t for t in optuna_trials if "tuneloop_prior" in t.user_attrs]
    assert sorted(t.user_attrs["tuneloop_prior"] for t in priors) == sorted(t.number for t in inside)
    assert sorted(t.value for t in priors) == sorted(t.value for t in inside)
    assert len(optuna_trials) == len(inside) + 3  # the priors, then this study's own three
    stored = tl.Store(storage).require_study("r2").config
    assert stored["warm_start"] == {"r1": len(inside)}
    assert second.warm_note == f"warm start: {len(inside)} trials from r1 fed to OptunaSearcher"

    # next_round warm-starts from its parent chain; fixed parameters must match
    third = second.next_round(tl.Space(x=tl.Float(0.0, 2.0)), fixed={"y": 0.0})
    assert third.warm_start == ("r2", "r1")
    third.run(1, searcher="tpe")
    assert third.warm_note == "warm start: no finished trial of r2, r1 fits this space"  # no trial had y == 0.0
    assert second.next_round(warm_start=[]).warm_start == ()


def test_warm_start_refuses_other_objectives_and_unknown_studies(storage):
    space = tl.Space(x=tl.Float(-2.0, 2.0))
    tl.Study("acc", space, plane, metric="acc", mode="max", storage=storage, searcher="random").run(1)
    for names, says in ((["acc"], "optimizes max acc, this study min loss"), (["nope"], "not a study"), (["me"], "from itself")):
        study = tl.Study("me", space, plane, metric="loss", mode="min", storage=storage, warm_start=names)
        with pytest.raises(ConfigError, match=says):
            study.run(1)
    with pytest.raises(ConfigError, match="warm_start"):
        tl.Study("me", space, plane, metric="loss", mode="min", warm_start=[3])


def _trials_to_target(study, target):
    """The number of trials the study ran until one reached ``target`` (all of them + 1 if none did)."""
    values = [t.value for t in sorted(study.trials, key=lambda t: t.number)]
    return next((i + 1 for i, v in enumerate(values) if v <= target), len(values) + 1)


@pytest.mark.slow  # ~5 seeds x 3 TPE studies of up to 50 trials: about 20 s on two cores
def test_a_warm_started_tpe_round_reaches_the_target_in_fewer_trials(storage):
    target, budget = 1.0, 50
    warm, cold = [], []
    for seed in range(5):
        first = tl.Study(f"r1-{seed}", bowl_space(), bowl, metric="loss", mode="min", storage=storage,
                         searcher="tpe", seed=100 + seed)
        first.run(40)
        for name, warm_start, into in ((f"warm-{seed}", [first.name], warm), (f"cold-{seed}", None, cold)):
            study = tl.Study(name, bowl_space(), bowl, metric="loss", mode="min", storage=storage, searcher="tpe",
                             seed=200 + seed, warm_start=warm_start)
            study.run(budget)
            into.append(_trials_to_target(study, target))
    # a warm round starts from round 1's model; a cold one spends its first 10 trials at random
    assert statistics.median(warm) + 10 <= statistics.median(cold), (warm, cold)
