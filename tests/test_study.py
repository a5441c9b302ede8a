"""Study: argument checks with the standard message, re-opening rules, best, params access."""

import pytest
import trial_functions as tf

import tuneloop as tl


def test_mode_error_has_the_standard_shape(space):
    with pytest.raises(tl.ConfigError) as info:
        tl.Study("s", space, tf.quadratic, metric="loss", mode="maximize")
    assert str(info.value) == "The 'mode' argument of Study must be 'min' or 'max'. Got 'maximize' instead."


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": ""}, "The 'name' argument of Study must be a non-empty string"),
        ({"fn": 3}, "The 'fn' argument of Study must be a function"),
        ({"metric": ""}, "The 'metric' argument of Study must be the name of a reported metric"),
        ({"budget": {"epochs": 0}}, "Budget resource 'epochs' must be a positive number"),
    ],
)
def test_bad_study_arguments(space, kwargs, message):
    args = {"name": "s", "fn": tf.quadratic, "metric": "loss", "mode": "min", **kwargs}
    with pytest.raises(tl.ConfigError, match=message):
        tl.Study(args.pop("name"), space, args.pop("fn"), **args)


@pytest.mark.parametrize(
    "run_kwargs, message",
    [
        ({"n_trials": 2, "searcher": "bayes"}, "Unknown searcher 'bayes'. Valid names: cmaes, fasttpe, gp, grid, nsga2, nsga3, random, sobol, tpe."),
        ({"n_trials": 2, "scheduler": "bohb"}, "Unknown scheduler 'bohb'. Valid names: asha, forecast, hyperband, median, none, pbt, sha."),
        ({"n_trials": 2, "executor": "ray2"}, "Unknown executor 'ray2'. Valid names: inline, population, processes, ray."),
        ({}, "Study.run needs n_trials or timeout"),
        ({"n_trials": 0}, "The 'n_trials' argument of Study.run must be a positive integer. Got 0 instead."),
        ({"n_trials": 2, "workers": 0}, "The 'workers' argument of Study.run must be a positive integer"),
    ],
)
def test_bad_run_arguments_fail_before_any_trial(storage, space, run_kwargs, message):
    study = tl.Study("s", space, tf.quadratic, metric="loss", mode="min", storage=storage)
    with pytest.raises(tl.ConfigError) as info:
        study.run(**run_kwargs)
    assert str(info.value) == message or message in str(info.value)
    assert study.trials == []


def test_reopening_with_another_space_or_objective_is_refused(storage, space):
    tl.Study("s", space, tf.quadratic, metric="loss", mode="min", storage=storage).run(n_trials=1)
    other = tl.Space(x=tl.Float(-1.0, 1.0))
    with pytest.raises(tl.ConfigError, match="different search space; give the changed space a new study name"):
        tl.Study("s", other, tf.quadratic, metric="loss", mode="min", storage=storage).run(n_trials=2)
    with pytest.raises(tl.ConfigError, match="has mode 'min', not 'max'"):
        tl.Study("s", space, tf.quadratic, metric="loss", mode="max", storage=storage).run(n_trials=2)


def test_best_follows_the_mode_and_explains_an_empty_study(storage):
    space = tl.Space(x=tl.Float(0.0, 1.0))
    low = tl.Study("lo", space, tf.fails_when_negative, metric="v", mode="min", storage=storage)
    with pytest.raises(tl.TuneloopError, match="has no completed trial yet"):
        low.best
    low.run(n_trials=5, seed=0)
    high = tl.Study("hi", space, tf.fails_when_negative, metric="v", mode="max", storage=storage)
    high.run(n_trials=5, seed=0)
    assert low.best.value == min(t.value for t in low.trials)
    assert high.best.value == max(t.value for t in high.trials)


def test_the_study_seed_is_recorded_and_reused(storage, space):
    study = tl.Study("s", space, tf.quadratic, metric="loss", mode="min", storage=storage)
    study.run(n_trials=2)
    record = study.store(None).get_study("s")
    assert isinstance(record.config["seed"], int)
    study.run(n_trials=3)
    from tuneloop.run.driver import trial_seed

    assert [t.seed for t in study.trials] == [trial_seed(record.config["seed"], n) for n in range(3)]


def test_params_and_budget_read_by_attribute_and_by_key():
    p = tl.Params({"lr": 0.1, "opt": "sgd"})
    assert p.lr == p["lr"] == 0.1 and dict(p) == {"lr": 0.1, "opt": "sgd"}
    with pytest.raises(AttributeError, match="This trial has no parameter 'momentum'; it has: lr, opt."):
        p.momentum
    with pytest.raises(AttributeError, match="read-only"):
        p.lr = 1.0
    assert tl.Budget(epochs=3).epochs == 3


def test_report_rejects_bad_steps_and_values(storage):
    def bad_step(trial):
        trial.report(-1, loss=1.0)

    def bad_value(trial):
        trial.report(0, loss="low")

    for fn, message in ((bad_step, "The 'step' argument of Trial.report must be a non-negative int"),
                        (bad_value, "Metric 'loss' must be a number")):
        study = tl.Study(fn.__name__, tl.Space(x=tl.Float(0, 1)), fn, metric="loss", mode="min", storage=storage)
        study.run(n_trials=1)
        assert study.trials[0].state == "failed" and message in study.trials[0].error


@pytest.mark.parametrize("executor", ["inline", "processes"])
def test_attributes_set_by_a_trial_are_stored_with_it(storage, executor):
    from trial_functions import sets_attributes

    study = tl.Study("attrs", {"x": tl.Float(0, 1)}, sets_attributes, metric="loss", mode="min", storage=storage)
    study.run(n_trials=2, executor=executor, workers=2 if executor == "processes" else 1)
    for t in study.trials:
        assert t.state == "completed" and t.attrs["commit"] == "abc123" and t.attrs["layers"] == 3


def test_set_attr_refuses_what_is_not_a_scalar(storage):
    def bad(trial):
        trial.set_attr("x", [1, 2])

    study = tl.Study("attrs-bad", {"x": tl.Float(0, 1)}, bad, metric="loss", mode="min", storage=storage)
    study.run(n_trials=1)
    (t,) = study.trials
    assert t.state == "failed" and "takes a string, number, bool or None" in t.error
