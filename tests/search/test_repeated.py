"""Repeating each configuration over seeds: ``study.run(seeds=K)``."""

import pytest
import trial_functions as tf

import tuneloop as tl


def test_seeds_repeat_each_configuration_with_its_own_trial_seed(storage):
    from tuneloop.analysis import seed_groups

    study = tl.Study("seeded", tl.Space(x=tl.Float(-2.0, 2.0)), tf.quadratic, metric="loss", mode="min",
                     storage=storage, searcher="tpe")
    study.run(n_trials=9, seeds=3, seed=0)
    trials = study.trials
    assert [t.params for t in trials[0:3]] == [trials[0].params] * 3
    assert len({repr(t.params) for t in trials}) == 3 and len({t.seed for t in trials}) == 9
    groups = seed_groups(trials)
    assert sorted(len(g["trials"]) for g in groups) == [3, 3, 3]
    with pytest.raises(tl.ConfigError, match="The 'seeds' argument of Study.run must be a positive integer"):
        study.run(n_trials=12, seeds=0)
