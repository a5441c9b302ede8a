"""One contract suite that every searcher passes; a new searcher is tested by adding its name."""

import pytest

import tuneloop as tl
from tuneloop.search import Outcome, searchers

ALL = ["grid", "random", "sobol", "tpe", "gp", "cmaes"]


def objective(params: dict) -> float:
    return (params["x"] - 0.5) ** 2 + (0.0 if params["opt"] == "adam" else 0.3)


def drive(name: str, space: tl.Space, seed: int, n: int, **options) -> list[dict]:
    """Ask/tell ``n`` times on a deterministic objective; return the proposed configurations."""
    searcher = searchers.create({"name": name, **options}, space=space, seed=seed, mode="min")
    seen = []
    for _ in range(n):
        proposals = searcher.ask(1)
        if not proposals:
            break
        p = proposals[0]
        seen.append(p.params)
        searcher.tell(Outcome(p.params, "completed", objective(p.params), [(0, objective(p.params))], p.token))
    return seen


@pytest.mark.parametrize("name", ALL)
def test_every_proposal_is_a_point_of_the_space(name, space):
    for params in drive(name, space, seed=0, n=25):
        space.validate(params)


@pytest.mark.parametrize("name", ALL)
def test_a_fixed_seed_reproduces_the_sequence(name, space):
    first = drive(name, space, seed=7, n=14, **({"shuffle": True} if name == "grid" else {}))
    assert first == drive(name, space, seed=7, n=14, **({"shuffle": True} if name == "grid" else {}))
    other = drive(name, space, seed=8, n=14, **({"shuffle": True} if name == "grid" else {}))
    assert other != first


@pytest.mark.parametrize("name", ALL)
def test_replayed_and_failed_outcomes_are_accepted(name, space):
    searcher = searchers.create(name, space=space, seed=0, mode="min")
    done = {"x": 0.1, "lr": 0.01, "opt": "adam"}
    searcher.tell(Outcome(done, "completed", 0.16, [(0, 0.5), (1, 0.16)]))  # replayed: no token
    searcher.tell(Outcome({"x": 0.2, "lr": 0.01, "opt": "adam"}, "pruned", 0.3, [(0, 0.3)]))
    searcher.tell(Outcome({"x": 0.3, "lr": 0.02, "opt": "adam"}, "interrupted"))
    for _ in range(3):
        p = searcher.ask(1)[0]
        searcher.tell(Outcome(p.params, "failed", None, [], p.token))
    p = searcher.ask(1)[0]
    searcher.tell(Outcome(p.params, "diverged", float("nan"), [(0, float("nan"))], p.token))
    space.validate(searcher.ask(1)[0].params)


@pytest.mark.parametrize("name", ["tpe", "gp", "cmaes"])
def test_model_based_searchers_beat_random_search(name):
    space = tl.Space(x=tl.Float(-5.0, 5.0), y=tl.Float(-5.0, 5.0), opt=tl.Choice(["adam"]))

    def best(n_name):
        return min((p["x"] - 0.5) ** 2 + p["y"] ** 2 for p in drive(n_name, space, seed=3, n=40))

    assert best(name) < best("random")


def test_grid_proposes_each_point_once_then_is_exhausted(space):
    proposed = drive("grid", space, seed=0, n=1000, steps=2)
    assert len(proposed) == space.grid_size(2) == 2 * 2 * 3
    assert sorted(map(repr, proposed)) == sorted(map(repr, space.grid(2)))


def test_grid_skips_points_already_taken(space):
    searcher = searchers.create({"name": "grid", "steps": 2}, space=space)
    taken = space.grid(2)[0]
    searcher.tell(Outcome(taken, "interrupted"))
    proposed = [p.params for p in searcher.ask(100)]
    assert taken not in proposed and len(proposed) == space.grid_size(2) - 1


def test_unknown_name_lists_the_valid_ones(space):
    with pytest.raises(tl.ConfigError) as info:
        searchers.create("tpee", space=space)
    assert str(info.value) == "Unknown searcher 'tpee'. Valid names: cmaes, gp, grid, random, sobol, tpe."


def test_bad_options_name_the_searcher(space):
    with pytest.raises(tl.ConfigError, match="Bad options for searcher 'tpe'"):
        searchers.create({"name": "tpe", "no_such_option": 1}, space=space)


def test_seeds_repeat_each_configuration_with_its_own_trial_seed(storage):
    import trial_functions as tf

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
