"""Scientific values take turns; each has its own searcher over the nuisance parameters."""

import collections

import pytest

import tuneloop as tl
from tuneloop.search import Outcome, Stratified, searchers

SPACE = tl.Space(
    act=tl.Choice({"relu": {}, "gelu": {"approx": tl.Choice([True, False])}, "tanh": {}}),
    lr=tl.LogFloat(1e-3, 1.0),
)


def make(space, i):
    return searchers.create("random", space=space, seed=i)


def test_each_scientific_value_gets_an_equal_share_and_its_own_children():
    s = Stratified(SPACE, ["act"], make)
    proposals = s.ask(12)
    counts = collections.Counter(p.params["act"] for p in proposals)
    assert counts == {"relu": 4, "gelu": 4, "tanh": 4}
    for p in proposals:
        assert ("approx" in p.params) == (p.params["act"] == "gelu")
        assert SPACE.validate(p.params)




def test_outcomes_reach_only_the_searcher_of_their_value():
    told = collections.defaultdict(list)

    class Spy:
        def __init__(self, inner, i):
            self.inner, self.i = inner, i

        def ask(self, n=1):
            return self.inner.ask(n)

        def tell(self, outcome):
            told[self.i].append(outcome)
            self.inner.tell(outcome)

    s = Stratified(SPACE, ["act"], lambda sub, i: Spy(make(sub, i), i))
    for p in s.ask(6):
        s.tell(Outcome(p.params, "completed", p.params["lr"], token=p.token))
    levels = [lvl["act"] for lvl in s.levels]
    assert {i: len(v) for i, v in told.items()} == {0: 2, 1: 2, 2: 2}
    for i, outcomes in told.items():
        assert all("act" not in o.params for o in outcomes)  # the inner searcher sees nuisance only
        assert all(("approx" in o.params) == (levels[i] == "gelu") for o in outcomes)


def test_replayed_trials_use_up_their_value_turns():
    s = Stratified(SPACE, ["act"], make)
    for _ in range(3):  # a resumed study: three relu trials already stored
        s.tell(Outcome({"act": "relu", "lr": 0.1}, "completed", 0.1))
    counts = collections.Counter(p.params["act"] for p in s.ask(3))
    assert counts == {"gelu": 2, "tanh": 1} or counts == {"gelu": 1, "tanh": 2}
    assert s.counts == [3, s.counts[1], s.counts[2]] and sum(s.counts) == 6


def test_a_float_scientific_parameter_is_compared_on_a_grid_and_grids_exhaust():
    space = tl.Space(dropout=tl.Float(0.0, 0.4), width=tl.Choice([8, 16]))
    s = Stratified(space, ["dropout"], lambda sub, i: searchers.create("grid", space=sub, seed=0), steps=3)
    got = s.ask(100)
    assert sorted((p.params["dropout"], p.params["width"]) for p in got) == [
        (d, w) for d in (0.0, 0.2, 0.4) for w in (8, 16)]


def test_bad_scientific_declarations_are_explained():
    with pytest.raises(tl.ConfigError, match="'approx' is not a top-level parameter"):
        Stratified(SPACE, ["approx"], make)
    wide = tl.Space(a=tl.Choice(list(range(70))), b=tl.LogFloat(1e-3, 1.0))
    with pytest.raises(tl.ConfigError, match="more than 64"):
        Stratified(wide, ["a"], make)
