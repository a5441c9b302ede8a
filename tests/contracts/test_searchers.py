"""The searcher contract (optuna's BasicSamplerTestCase is the model): every registered searcher
proposes points of the space, reproduces its sequence from a seed, takes every kind of outcome
(replayed, failed, pruned, diverged, interrupted) and declares truthfully whether it runs out.
A new searcher is tested by registering it."""

import pytest

import tuneloop as tl
from tuneloop.objectives import Objectives
from tuneloop.search import Outcome, Searcher, searchers
from tuneloop.store import TrialState

ALL = searchers.names  # every registered searcher


def objective(params: dict) -> float:
    return (params.get("x", 0.0) - 0.5) ** 2 + (0.0 if params["opt"] == "adam" else 0.3)


def make(name: str, space: tl.Space, seed: int = 0, **options) -> Searcher:
    return searchers.create({"name": name, **options}, space=space, seed=seed, mode="min")


def drive(name: str, space: tl.Space, seed: int, n: int, **options) -> list[dict]:
    """Ask/tell ``n`` times on a deterministic objective; return the proposed configurations."""
    searcher = make(name, space, seed, **options)
    seen = []
    for _ in range(n):
        proposals = searcher.ask(1)
        if not proposals:
            break
        p = proposals[0]
        seen.append(p.params)
        searcher.tell(Outcome(p.params, TrialState.COMPLETED, objective(p.params), [(0, objective(p.params))], p.token))
    return seen


@pytest.mark.parametrize("name", ALL)
def test_it_builds_what_its_name_declares(name, space):
    searcher = make(name, space)
    assert isinstance(searcher, Searcher) and searcher.waiting is False
    assert searcher.ends_by_itself is searchers.declared(name, "ends_by_itself")


@pytest.mark.parametrize("name", ALL)
def test_every_proposal_is_a_point_of_the_space(name, space):
    proposed = drive(name, space, seed=0, n=12)
    assert len(proposed) == 12  # the grid of 5 steps holds 5 * 5 * 6 points: none runs out here
    for params in proposed:
        assert space.validate(params) == params  # raises on a point outside the space


@pytest.mark.parametrize("name", ALL)
def test_a_fixed_seed_reproduces_the_sequence(name, space):
    options = {"shuffle": True} if name == "grid" else {}
    first = drive(name, space, seed=7, n=14, **options)
    assert len(first) == 14 and first == drive(name, space, seed=7, n=14, **options)
    assert drive(name, space, seed=8, n=14, **options) != first


@pytest.mark.parametrize("name", ALL)
def test_replayed_failed_pruned_and_interrupted_outcomes_are_accepted(name, space):
    searcher = make(name, space)
    replayed = [{"x": 0.1, "lr": 0.01, "opt": "adam"}, {"x": 0.2, "lr": 0.01, "opt": "adam"},
                {"x": 0.3, "lr": 0.02, "opt": "adam"}]
    searcher.tell(Outcome(replayed[0], TrialState.COMPLETED, 0.16, [(0, 0.5), (1, 0.16)], number=0))  # no token
    searcher.tell(Outcome(replayed[1], TrialState.PRUNED, 0.3, [(0, 0.3)], number=1))
    searcher.tell(Outcome(replayed[2], TrialState.INTERRUPTED, number=2))  # taken; its result comes later
    told = []
    for state in (TrialState.FAILED, TrialState.FAILED, TrialState.DIVERGED, TrialState.PRUNED):
        (p,) = searcher.ask(1)
        told.append(p.params)
        value = {TrialState.DIVERGED: float("nan"), TrialState.PRUNED: 0.9}.get(state)
        searcher.tell(Outcome(p.params, state, value, [] if value is None else [(0, value)], p.token))
    after = [p.params for p in searcher.ask(3)]
    assert len(after) == 3
    for params in told + after:
        space.validate(params)
    if name == "grid":  # a grid never proposes a point it was told about again
        assert not any(p in replayed + told for p in after)


@pytest.mark.parametrize("name", ALL)
def test_a_searcher_that_ends_by_itself_runs_out_and_others_never_do(name):
    small = tl.Space(opt=tl.Choice(["adam", "sgd"]), width=tl.Choice([16, 32]))
    proposed = drive(name, small, seed=0, n=12)
    if searchers.declared(name, "ends_by_itself"):
        assert sorted(map(repr, proposed)) == sorted(map(repr, small.grid()))  # each point once, then nothing
        searcher = make(name, small)
        assert len(searcher.ask(10)) == 4 and searcher.ask(1) == []
    else:
        assert len(proposed) == 12  # it keeps proposing (repeats included)


@pytest.mark.slow  # 2-5 s in the default run: .ci/run runs it in its second pytest call
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
    searcher.tell(Outcome(taken, TrialState.INTERRUPTED))
    proposed = [p.params for p in searcher.ask(100)]
    assert taken not in proposed and len(proposed) == space.grid_size(2) - 1


def test_unknown_name_lists_the_valid_ones(space):
    with pytest.raises(tl.ConfigError) as info:
        searchers.create("tpee", space=space)
    assert str(info.value) == "Unknown searcher 'tpee'. Valid names: cmaes, fasttpe, gp, grid, nsga2, nsga3, random, sobol, tpe."


def test_bad_options_name_the_searcher(space):
    with pytest.raises(tl.ConfigError, match="Bad options for searcher 'tpe'"):
        searchers.create({"name": "tpe", "no_such_option": 1}, space=space)


@pytest.mark.parametrize("name", ALL)
def test_an_enqueued_partial_configuration_is_completed_inside_the_space(name, space):
    from tuneloop.search import check_partial, fill

    searcher = make(name, space)
    p = fill(searcher, space, check_partial(space, {"momentum": 0.45}), seed=0)  # implies opt="sgd"
    assert space.validate(p.params) == p.params and (p.params["opt"], p.params["momentum"]) == ("sgd", 0.45)
    searcher.tell(Outcome(p.params, TrialState.COMPLETED, 0.1, [(0, 0.1)], p.token))
    assert len(searcher.ask(2)) == 2  # and it goes on proposing


TWO = Objectives.of(objectives={"err": "min", "cost": "min"}, constraints={"cost": ("<=", 0.8)})


@pytest.mark.parametrize("name", ALL)
def test_several_objectives_and_constraints_are_learned_from_or_refused_in_one_line(name, space):
    """With two objectives and a constraint a searcher either takes every kind of outcome (each
    finished one with both values and its violation; replayed ones too) or refuses when built, in one
    line naming the searchers that can."""
    try:
        searcher = searchers.create(name, space=space, seed=3, mode="min", objectives=TWO)
    except tl.ConfigError as e:
        assert "one objective" in str(e) and "nsga2" in str(e) and "\n" not in str(e)
        return
    asked = []
    for i in range(10):
        proposals = searcher.ask(1)
        assert proposals, f"{name} ran out after {i} proposals"
        p = proposals[0]
        asked.append(p.params)
        err, cost = objective(p.params), abs(p.params.get("x", 0.0))
        values = {"err": err, "cost": cost}
        state = (TrialState.PRUNED, TrialState.FAILED, TrialState.COMPLETED)[i % 3]
        searcher.tell(Outcome(p.params, state, err, [(0, err)], p.token, number=i, values=TWO.vector(values),
                              violations=TWO.violations(values)))
    for params in asked[:3]:  # another driver's trials, replayed without a token
        values = {"err": 0.1}  # its cost is missing: infeasible by far, and no vector
        searcher.tell(Outcome(params, TrialState.COMPLETED, 0.1, [], None, values=TWO.vector(values),
                              violations=TWO.violations(values)))
    assert all(space.validate(p) == p for p in [q.params for q in searcher.ask(2)])
