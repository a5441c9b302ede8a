"""Objectives, fronts, hypervolumes and pick rules, checked against brute-force definitions."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shared import HOSTILE

import tuneloop as tl
from tuneloop.direction import Direction
from tuneloop.errors import ConfigError, StorageError, TuneloopError
from tuneloop.objectives import Objectives, dominates, hypervolume, hypervolume_history, layers, pareto_indices
from tuneloop.picking import Rule, pick, pick_all
from tuneloop.store.records import StudyRecord


@dataclass
class T:
    """What the ranking functions read of a trial: a state and final values."""

    values: dict = field(default_factory=dict)
    state: str = "completed"


TWO = Objectives.of(objectives={"acc": "max", "ms": "min"})
HOSTILE_NAMES = [HOSTILE, "[bold red]x[/]", "é\u202e\x00名\n\r", "x" * 10_000]


# -- building: every mistake is one line that says what to write ----------------------------------
@pytest.mark.parametrize(("kwargs", "fix"), [
    ({}, "metric='val_loss', mode='min'"),
    ({"metric": "loss"}, "metric='val_loss', mode='min'"),
    ({"metric": "loss", "mode": "maximize"}, "'min' or 'max'"),
    ({"metric": "", "mode": "min"}, "e.g. 'val_loss'"),
    ({"metric": 3, "mode": "min"}, "e.g. 'val_loss'"),
    ({"objectives": {"a": "max"}, "metric": "a"}, "not both"),
    ({"objectives": "val_acc"}, "e.g. {'val_acc': 'max'"),
    ({"objectives": {}}, "e.g. {'val_acc': 'max'"),
    ({"objectives": [("a", "max")]}, "e.g. {'val_acc': 'max'"),
    ({"objectives": {"a": "up"}}, "'min' or 'max'"),
    ({"objectives": {1: "max"}}, "e.g. 'val_loss'"),
    ({"objectives": {"sys/cpu": "min"}}, "use a metric the trial reports"),
    ({"objectives": {"a": "max"}, "constraints": "ms <= 2"}, "e.g. {'latency_ms': ('<=', 2.0)"),
    ({"objectives": {"a": "max"}, "constraints": {"ms": ("<", 2.0)}}, "('<=', bound) or ('>=', bound)"),
    ({"objectives": {"a": "max"}, "constraints": {"ms": ("<=", math.nan)}}, "finite number"),
    ({"objectives": {"a": "max"}, "constraints": {"ms": ("<=", True)}}, "finite number"),
    ({"objectives": {"a": "max"}, "constraints": {"ms": ("<=", "2")}}, "finite number"),
    ({"objectives": {"a": "max"}, "constraints": {"ms": 2.0}}, "finite number"),
    ({"objectives": {"a": "max"}, "constraints": {"sys/gpu_mem": ("<=", 2.0)}}, "use a metric the trial reports"),
    ({"objectives": {"a": "max", "b": "min"}, "prune_on": "c"}, "name one of 'a', 'b'"),
    ({"objectives": {"a": "max", "b": "min"}, "prune_on": {"c": 1.0}}, "weigh 'a', 'b'"),
    ({"objectives": {"a": "max", "b": "min"}, "prune_on": {"a": 0}}, "positive number"),
    ({"objectives": {"a": "max", "b": "min"}, "prune_on": {"a": -1.0}}, "positive number"),
    ({"objectives": {"a": "max", "b": "min"}, "prune_on": {"a": True}}, "positive number"),
    ({"objectives": {"a": "max", "b": "min"}, "prune_on": {"a": math.inf}}, "positive number"),
    ({"objectives": {"a": "max", "b": "min"}, "prune_on": {}}, "e.g. {'a': 1.0}"),
    ({"objectives": {"a": "max", "b": "min"}, "prune_on": ["a"]}, "e.g. {'a': 1.0}"),
])
def test_every_mistake_is_a_one_line_config_error_naming_the_fix(kwargs, fix):
    with pytest.raises(ConfigError) as info:
        Objectives.of(**kwargs)
    message = str(info.value)
    assert fix in message and "\n" not in message


def _hostile_mistakes(name: str) -> list[dict]:
    return [{"objectives": {name: "maximize"}}, {"metric": name, "mode": name},
            {"objectives": {"sys/" + name: "max"}}, {"objectives": name},
            {"objectives": {name: "max"}, "constraints": {name: ("<", 1)}},
            {"objectives": {name: "max"}, "constraints": {name: ("<=", name)}},
            {"objectives": {name: "max"}, "constraints": name},
            {"objectives": {name: "max"}, "prune_on": {name: -1}}]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=["html", "rich", "unicode", "10k"])
def test_hostile_names_give_one_line_errors_or_work(name):
    """Markup, control characters and a 10,000-character name: a valid name works end to end, and
    every mistake around it is still one line (names are shown as repr, never raw)."""
    objectives = Objectives.of(objectives={name: "max", "ms": "min"}, constraints={name: (">=", 0.5)},
                               prune_on={name: 1.0, "ms": 0.5})
    assert objectives.names == [name, "ms"]
    assert Objectives.from_config(objectives.to_config(), name, "max") == objectives
    assert objectives.judged.score({name: 1.0, "ms": 2.0}) == pytest.approx(0.0)
    assert str(objectives.judged).endswith("(higher is better)")
    for kwargs in _hostile_mistakes(name):
        with pytest.raises(ConfigError) as info:
            Objectives.of(**kwargs)
        assert "\n" not in str(info.value) and "\r" not in str(info.value), kwargs


@pytest.mark.parametrize("prune_on", ["missing", {"missing": 1.0}])
def test_an_unknown_prune_on_with_a_newline_in_an_objective_name_is_one_line(prune_on):
    with pytest.raises(ConfigError) as info:
        Objectives.of(objectives={"a\nb": "max"}, prune_on=prune_on)
    assert "\n" not in str(info.value)


# -- stored form -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs", [
    {"metric": "loss", "mode": "min"},
    {"metric": "acc", "mode": "max", "constraints": {"ms": ("<=", 2.0)}},
    {"objectives": {"acc": "max", "ms": "min", "mb": "min"}},
    {"objectives": {"acc": "max", "ms": "min"}, "constraints": {"ms": ("<=", 2.0), "acc": (">=", 0.5)},
     "prune_on": "ms"},
    {"objectives": {"acc": "max", "ms": "min"}, "prune_on": {"acc": 1.0, "ms": 0.01}},
])
def test_to_config_and_from_config_round_trip(kwargs):
    import json

    objectives = Objectives.of(**kwargs)
    stored = json.loads(json.dumps(objectives.to_config()))  # as the database keeps it
    again = Objectives.from_config(stored, objectives.primary.name, objectives.primary.direction.value)
    assert again == objectives and again.judged == objectives.judged


def test_a_study_stored_before_objectives_reads_its_metric_and_mode():
    record = StudyRecord(1, "old", "val_loss", "min", tl.Space(x=tl.Float(0, 1)), {"seed": 1}, 0.0, 0.0)
    assert record.objectives == Objectives.of("val_loss", "min") and not record.objectives.multi


@pytest.mark.parametrize("config", [
    {"objectives": "acc"}, {"objectives": [["acc"]]}, {"objectives": [["acc", "maximize"]]}, {"objectives": []},
    {"objectives": {"acc": "max"}}, {"objectives": [["sys/cpu", "max"]]},
    {"objectives": [["acc", "max"]], "constraints": "x"}, {"objectives": [["acc", "max"]], "constraints": 5},
    {"objectives": [["acc", "max"]], "constraints": [["acc", "<="]]},
    {"objectives": [["acc", "max"]], "constraints": [["acc", "<=", "nan"]]},
    {"objectives": [["acc", "max"]], "constraints": [[HOSTILE, "!=", 1]]},
    {"objectives": [["acc", "max"]], "constraints": [["acc", "<=", True]]},
    {"objectives": [["acc", "max"]], "prune_on": 5}, {"objectives": [["acc", "max"]], "prune_on": []},
    {"objectives": [["acc", "max"]], "prune_on": [["b", 1]]},
    {"objectives": [["acc", "max"]], "prune_on": [["acc", -1]]},
    {"objectives": [["acc", "max"]], "prune_on": "x" * 10_000},
    {"objectives": [[HOSTILE + "\n" + "y" * 10_000, "up"]]},
    {"objectives": [["a", "max"], ["a", "min"]]}, {"objectives": [[1, "max"]]}, {"objectives": [[None, "max"]]},
    {"objectives": [["acc", "max"]], "constraints": [["acc", "<=", 1], ["acc", ">=", 0]]},
    {"objectives": [["other", "max"], ["acc", "max"]]}, {"objectives": [["acc", "min"]]},  # not the metric, mode columns
])
def test_a_malformed_stored_config_is_a_one_line_storage_error(config):
    """The database may come from anyone: whatever it holds, reading the objectives is a StorageError
    naming the study, never a crash or a wrong study."""
    record = StudyRecord(1, HOSTILE, "acc", "max", tl.Space(x=tl.Float(0, 1)), config, 0.0, 0.0)
    with pytest.raises(StorageError) as info:
        record.objectives  # noqa: B018 - the property parses the config
    message = str(info.value)
    assert message.startswith("Corrupt row:") and repr(HOSTILE) in message and "\n" not in message


def test_a_malformed_stored_config_stops_the_cli_and_the_study_api(storage):
    """A stored study whose objectives are malformed fails cleanly where it is read back."""
    from tuneloop.store import Store

    study = tl.Study("mo", tl.Space(x=tl.Float(0, 1)), lambda t: {"a": 1.0, "b": 1.0},
                     objectives={"a": "max", "b": "min"}, storage=storage)
    with Store(storage) as store:
        record = study.record(store)
        store.update_study_config(record.id, {**record.config, "objectives": [["a", "sideways"]]})
    with pytest.raises(StorageError, match="Corrupt row"):
        tl.Study.stored("mo", storage)


# -- fronts and layers, against brute force ---------------------------------------------------------
def brute_front(points: list[tuple]) -> list[int]:
    def worse(a, b):  # b dominates a
        return all(y <= x for x, y in zip(a, b)) and any(y < x for x, y in zip(a, b))

    return [i for i, p in enumerate(points) if not any(worse(p, q) for q in points)]


small_points = st.integers(1, 3).flatmap(
    lambda d: st.lists(st.tuples(*[st.integers(0, 6)] * d), max_size=25))  # ties and duplicates on purpose


@settings(max_examples=60, deadline=None)
@given(small_points)
def test_pareto_indices_are_exactly_the_non_dominated_points(points):
    assert pareto_indices(points) == brute_front(points)


@settings(max_examples=60, deadline=None)
@given(small_points)
def test_layers_partition_the_points_into_successive_fronts(points):
    layer = layers(points)
    assert len(layer) == len(points) and all(k >= 0 for k in layer)
    if not points:
        return
    assert sorted(set(layer)) == list(range(max(layer) + 1))  # no empty layer
    left = list(range(len(points)))
    for depth in range(max(layer) + 1):  # peel the fronts off one by one
        front = [left[i] for i in brute_front([points[j] for j in left])]
        assert sorted(front) == [i for i in range(len(points)) if layer[i] == depth]
        left = [i for i in left if i not in front]
    assert not left


def test_dominates_needs_one_strictly_better_coordinate():
    assert dominates((1, 2), (1, 3)) and not dominates((1, 3), (1, 3)) and not dominates((0, 4), (1, 3))


directions = st.lists(st.sampled_from(["min", "max"]), min_size=1, max_size=3)


@st.composite
def trials_of(draw, n_objectives: int, constrained: bool = False):
    names = [f"o{i}" for i in range(n_objectives)]
    out = []
    for _ in range(draw(st.integers(0, 20))):
        values = {n: float(draw(st.integers(-3, 3))) for n in names}
        if constrained:
            values["c"] = float(draw(st.integers(0, 4)))
        if draw(st.integers(0, 9)) == 0:
            values.pop(names[0])  # a trial that never reported an objective
        out.append(T(values, draw(st.sampled_from(["completed"] * 4 + ["failed", "pruned"]))))
    return out


@settings(max_examples=60, deadline=None)
@given(directions.flatmap(lambda d: st.tuples(st.just(d), trials_of(len(d), constrained=True))))
def test_front_ranked_and_best_against_brute_force(case):
    dirs, trials = case
    objectives = Objectives.of(objectives={f"o{i}": d for i, d in enumerate(dirs)}, constraints={"c": ("<=", 2)})
    signs = [1 if d == "min" else -1 for d in dirs]
    pool = [t for t in trials if t.state == "completed" and "o0" in t.values and t.values["c"] <= 2]
    losses = [tuple(s * t.values[f"o{i}"] for i, s in enumerate(signs)) for t in pool]
    expected = [pool[i] for i in brute_front(losses)]
    assert [id(t) for t in objectives.front(trials)] == [id(t) for t in expected]

    ranked = objectives.ranked(trials)
    completed = [t for t in trials if t.state == "completed" and "o0" in t.values]
    assert sorted(map(id, ranked)) == sorted(map(id, completed))  # every completed trial, once
    feasible = [objectives.feasible(t.values) for t in ranked]
    assert feasible == sorted(feasible, reverse=True)  # every feasible one before every infeasible one
    assert {id(t) for t in ranked[:len(expected)]} == {id(t) for t in expected}  # the front leads

    best = objectives.best(trials)
    if not pool:
        assert best is None
    else:
        assert best in pool and signs[0] * best.values["o0"] == min(signs[0] * t.values["o0"] for t in pool)


def test_missing_or_non_finite_metrics_break_constraints_and_keep_trials_off_the_front():
    objectives = Objectives.of(objectives={"acc": "max", "ms": "min"}, constraints={"mb": ("<=", 1.0)})
    trials = [T({"acc": 0.9, "ms": 1.0}), T({"acc": 0.9, "ms": 1.0, "mb": math.nan}),
              T({"acc": 0.9, "ms": 1.0, "mb": True}), T({"acc": 0.5, "ms": 2.0, "mb": 0.5}),
              T({"acc": math.inf, "ms": 1.0, "mb": 0.5})]
    assert objectives.front(trials) == [trials[3]]
    assert [str(c) for c in objectives.broken(trials[0].values)] == ["mb <= 1"]
    assert objectives.violations(trials[0].values) == (math.inf,)
    assert objectives.ranked(trials)[0] is trials[3] and trials[4] not in objectives.ranked(trials)


# -- hypervolume ------------------------------------------------------------------------------------
def brute_hypervolume(points: list[tuple[int, ...]], ref: tuple[int, ...]) -> int:
    """Count the unit cells below ``ref`` that some point dominates (integer points: exact)."""
    cells = itertools.product(*[range(r) for r in ref])
    return sum(1 for c in cells if any(all(p <= x for p, x in zip(pt, c)) for pt in points))


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 3).flatmap(lambda d: st.lists(st.tuples(*[st.integers(0, 8)] * d), max_size=12)))
def test_hypervolume_matches_counting_cells(points):
    ref = (8,) * len(points[0]) if points else (8, 8)
    assert hypervolume(points, ref) == pytest.approx(brute_hypervolume(points, ref))


def test_hypervolume_in_the_objectives_own_units_and_directions():
    trials = [T({"acc": 0.8, "ms": 2.0}), T({"acc": 0.6, "ms": 1.0}), T({"acc": 0.5, "ms": 3.0})]
    # maximizing acc above 0 and minimizing ms below 4: rectangles 0.8 x 2 and 0.6 x 3, overlap 0.6 x 2
    assert TWO.hypervolume(trials, [0.0, 4.0]) == pytest.approx(0.8 * 2 + 0.6 * 3 - 0.6 * 2)
    ref = TWO.reference(trials)
    assert ref[0] < 0.5 and ref[1] > 3.0  # worse than every trial, in each objective's direction
    assert TWO.reference([T({"acc": 1.0})]) is None


@settings(max_examples=40, deadline=None)
@given(trials_of(2, constrained=True))
def test_hypervolume_history_never_falls_and_ends_at_the_hypervolume(trials):
    objectives = Objectives.of(objectives={"o0": "max", "o1": "min"}, constraints={"c": ("<=", 2)})
    ref = [-4.0, 4.0]
    history = hypervolume_history(objectives, trials, ref)
    assert len(history) == len(trials)
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(history))
    if trials:
        assert history[-1] == pytest.approx(objectives.hypervolume(trials, ref))
        for k in range(len(trials)):  # each prefix's value is that prefix's own hypervolume
            assert history[k] == pytest.approx(objectives.hypervolume(trials[:k + 1], ref))


def test_hypervolume_history_follows_the_given_order():
    trials = [T({"acc": 0.9, "ms": 3.0}), T({"acc": 0.5, "ms": 1.0})]
    numbers = {id(trials[0]): 2, id(trials[1]): 1}
    history = hypervolume_history(TWO, trials, [0.0, 4.0], order=lambda t: numbers[id(t)])
    assert history == pytest.approx([0.5 * 3, 0.5 * 3 + 0.4 * 1])


# -- what a scheduler judges ------------------------------------------------------------------------
def test_judge_scores_one_metric_or_a_weighted_sum_with_higher_better():
    plain = Objectives.of(objectives={"acc": "max", "ms": "min"})
    assert plain.judged.score({"acc": 0.7}) == 0.7 and plain.judged.direction is Direction.MAX
    assert str(plain.judged) == "acc (max)"
    on_ms = Objectives.of(objectives={"acc": "max", "ms": "min"}, prune_on="ms").judged
    assert on_ms.score({"ms": 3.0}) == 3.0 and on_ms.direction is Direction.MIN
    summed = Objectives.of(objectives={"acc": "max", "ms": "min"}, prune_on={"acc": 2.0, "ms": 0.5}).judged
    assert summed.scalarized and summed.direction is Direction.MAX
    assert summed.score({"acc": 0.8, "ms": 2.0}) == pytest.approx(2.0 * 0.8 - 0.5 * 2.0)
    assert summed.score({"acc": 0.8}) is None  # a report without every weighed metric is not judged
    assert math.isnan(summed.score({"acc": math.nan, "ms": 1.0}))
    assert str(summed) == "2·acc - 0.5·ms (higher is better)"
    assert Objectives.of(objectives={"acc": "max", "ms": "min"}, prune_on={"acc": 1.0, "ms": 0.5}).metrics == \
        ["acc", "ms"]


def test_describe_lists_objectives_and_constraints():
    o = Objectives.of(objectives={"acc": "max", "ms": "min"}, constraints={"mb": ("<=", 1.5)})
    assert o.describe() == "max acc, min ms; subject to mb <= 1.5"
    assert o.metrics == ["acc", "ms", "mb"] and o.multi and o.primary.name == "acc"


# -- pick rules -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "metric", "direction", "conditions"), [
    ("max val_acc", "val_acc", "max", ()),
    ("  min latency_ms  ", "latency_ms", "min", ()),
    ("max val_acc where latency_ms <= 2", "val_acc", "max", (("latency_ms", "<=", 2.0),)),
    ("max val_acc where latency_ms<=2 and params_m < 1e-1", "val_acc", "max",
     (("latency_ms", "<=", 2.0), ("params_m", "<", 0.1))),
    ("min ms where acc >= 0.9 and acc > -1 and mb == 3", "ms", "min",
     (("acc", ">=", 0.9), ("acc", ">", -1.0), ("mb", "==", 3.0))),
])
def test_rule_parse_accepts_the_documented_forms(text, metric, direction, conditions):
    rule = Rule.parse(text)
    assert (rule.metric, rule.direction.value, rule.conditions) == (metric, direction, conditions)
    assert Rule.parse(str(rule)) == rule  # what it prints parses back


@pytest.mark.parametrize("text", [
    "", "val_acc", "maximize val_acc", "max", "max val_acc latency_ms", "max val_acc where",
    "max val_acc where latency_ms", "max val_acc where latency_ms <= two", "max val_acc where latency_ms != 2",
    "max val_acc where latency_ms <= nan", "max val_acc where latency_ms <= inf",
    "max val_acc where latency_ms <= 2 or params_m < 1",
    "max val_acc where latency_ms <= __import__('os').getpid()", "max val_acc; import os",
    "max " + "x" * 2000, HOSTILE, "max a\nb",
])
def test_rule_parse_refuses_anything_else_in_one_line(text, monkeypatch):
    import os

    monkeypatch.setattr(os, "system", lambda *a: pytest.fail("a pick rule ran code"))
    with pytest.raises(ConfigError) as info:
        Rule.parse(text)
    message = str(info.value)
    assert "\n" not in message and "'max val_acc where latency_ms <= 2'" in message and len(message) < 500


@pytest.mark.parametrize("text", ["max __import__('os').system('x')",
                                  "max acc where __import__('os').system('x') <= 1"])
def test_code_in_a_rule_is_a_metric_name_no_trial_reported(text, monkeypatch):
    """A rule is parsed word by word: code in it is only an unknown metric's name, refused by pick."""
    import os

    monkeypatch.setattr(os, "system", lambda *a: pytest.fail("a pick rule ran code"))
    assert "__import__('os').system('x')" in {Rule.parse(text).metric, *(c[0] for c in Rule.parse(text).conditions)}
    with pytest.raises(ConfigError, match="which no front member reported"):
        pick(FRONT, text)


def test_rule_parse_refuses_what_is_not_a_string():
    for value in (None, 3, ["max", "a"]):
        with pytest.raises(ConfigError, match="short string"):
            Rule.parse(value)


FRONT = [T({"acc": 0.95, "ms": 4.0, "mb": 3.0}), T({"acc": 0.9, "ms": 2.0, "mb": 1.0}),
         T({"acc": 0.8, "ms": 1.0, "mb": 0.5}), T({"acc": 0.7, "ms": 0.5})]


def test_pick_keeps_the_conditions_and_orders_by_the_rule():
    assert pick(FRONT, "max acc") is FRONT[0]
    assert pick(FRONT, "max acc where ms <= 2") is FRONT[1]
    assert pick(FRONT, "min ms where acc >= 0.8") is FRONT[2]
    assert pick_all(FRONT, "max acc where mb < 2") == [FRONT[1], FRONT[2]]  # a member without mb meets no bound on it
    assert pick(FRONT, lambda front: front[-1]) is FRONT[3]
    assert pick_all(FRONT, lambda front: [front[2], front[0]]) == [FRONT[2], FRONT[0]]


def test_pick_errors_say_why():
    with pytest.raises(TuneloopError, match="no feasible completed trial"):
        pick([], "max acc", "s")
    with pytest.raises(ConfigError, match="names 'speed', which no front member reported"):
        pick(FRONT, "max speed")
    with pytest.raises(TuneloopError, match="loosen them"):
        pick(FRONT, "max acc where ms < 0.1", "s")
    with pytest.raises(ConfigError, match="returns one of them"):
        pick(FRONT, lambda front: T({"acc": 1.0}))  # not a member of the front
    with pytest.raises(ConfigError, match="returns one of them"):
        pick(FRONT, lambda front: [])
