"""Search spaces: validation messages, grid enumeration, JSON round trip, membership."""

import json
import math

import pytest

import tuneloop as tl
from tuneloop.space import space_from_json


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: tl.Float(1.0, 0.5), "The 'low' argument of Float must be below 'high' (0.5). Got 1.0 instead."),
        (lambda: tl.Float(0.0, 0.0), "must be below 'high'"),
        (lambda: tl.Float(0.0, math.inf), "The 'high' argument of Float must be finite"),
        (lambda: tl.LogFloat(0.0, 1.0), "The 'low' argument of LogFloat must be positive"),
        (lambda: tl.LogFloat(-1.0, 1.0), "must be positive"),
        (lambda: tl.Int(0, 10, log=True), "The 'low' argument of Int must be positive when log=True"),
        (lambda: tl.Int(1, 11, log=True, step=2), "must be 1 when log=True"),
        (lambda: tl.Int(0.5, 10), "The 'low' argument of Int must be an integer"),
        (lambda: tl.Int(5, 5), "must be below 'high'"),
        (lambda: tl.Int(0, 10, step=4), "The 'high' argument of Int must be low plus a whole number of steps (4), e.g. 8"),
        (lambda: tl.Float(0.0, 1.0, step=0.3), "The 'high' argument of Float must be low plus a whole number of steps"),
        (lambda: tl.Choice([]), "The 'values' argument of Choice must be a non-empty"),
        (lambda: tl.Choice({}), "must be a non-empty"),
        (lambda: tl.Choice(["a", "a"]), "made of distinct values"),
        (lambda: tl.Choice([object()]), "made of str, int, float, bool or None"),
        (lambda: tl.Space(), "needs at least one parameter"),
        (lambda: tl.Space({"batch-size": tl.Int(1, 2)}), "use e.g. 'batch_size'"),
        (lambda: tl.Space(x=3), "must be a Float, LogFloat, Int or Choice"),
        (
            lambda: tl.Space(opt=tl.Choice({"a": {"lr": tl.Float(0, 1)}, "b": {"lr": tl.Float(0, 2)}})),
            "Parameter 'lr' is defined twice",
        ),
    ],
)
def test_bad_definitions_raise_config_error_saying_why(make, message):
    with pytest.raises(tl.ConfigError) as info:
        make()
    assert message in str(info.value)


def test_choice_keeps_true_and_one_apart():
    c = tl.Choice([True, 1, None])
    assert c.values == [True, 1, None]
    assert c.index(1) == 1 and c.index(True) == 0


def test_grid_expands_children_under_their_parent(space):
    grid = space.grid(steps=3)
    # x: 3 values, lr: 3 values, opt: sgd x 3 momentum values + adam
    assert len(grid) == space.grid_size(steps=3) == 3 * 3 * (3 + 1)
    assert all(("momentum" in g) == (g["opt"] == "sgd") for g in grid)
    assert len({json.dumps(g, sort_keys=True) for g in grid}) == len(grid)
    for g in grid:
        space.validate(g)


def test_grid_values_follow_each_parameters_scale():
    assert tl.Float(0.0, 1.0).grid_values(3) == [0.0, 0.5, 1.0]
    assert tl.LogFloat(1e-4, 1e-2).grid_values(3) == pytest.approx([1e-4, 1e-3, 1e-2])
    assert tl.Int(1, 4).grid_values(10) == [1, 2, 3, 4]  # few values: all of them
    assert tl.Int(1, 1000, log=True).grid_values(4) == [1, 10, 100, 1000]
    assert tl.Int(0, 10, step=5).grid_values(10) == [0, 5, 10]
    assert tl.Float(0.0, 1.0, step=0.25).grid_values(10) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert tl.Float(0.0, 1.0).grid_values(1) == [0.5]


def test_grid_steps_per_parameter():
    space = tl.Space(a=tl.Float(0, 1), b=tl.Float(0, 1))
    assert len(space.grid(steps={"a": 2, "default": 4})) == 8


def test_grid_refuses_to_enumerate_a_huge_space():
    space = tl.Space(**{f"p{i}": tl.Float(0, 1) for i in range(8)})
    with pytest.raises(tl.ConfigError, match="use the 'sobol' searcher"):
        space.grid(steps=10)


def test_json_round_trip_keeps_every_detail(space):
    rich = tl.Space(
        a=tl.Int(1, 64, log=True),
        b=tl.Float(0.0, 1.0, step=0.1),
        c=tl.Choice({True: {"d": tl.LogFloat(1e-5, 1e-1)}, False: None, 3: {"e": tl.Choice([None, 1.5, "x"])}}),
    )
    for s in (space, rich):
        text = json.dumps(s.to_json())
        back = space_from_json(text)
        assert back == s
        assert back.to_json() == s.to_json()
        assert back.names == s.names
    assert space_from_json(json.dumps(rich.to_json()))["c"].values == [True, False, 3]


def test_validate_accepts_points_and_explains_rejections(space):
    ok = {"x": 0.0, "lr": 0.1, "opt": "adam"}
    assert space.validate(ok) == ok
    with pytest.raises(tl.ConfigError, match=r"missing \['momentum'\]"):
        space.validate({"x": 0.0, "lr": 0.1, "opt": "sgd"})
    with pytest.raises(tl.ConfigError, match=r"unexpected \['momentum'\]"):
        space.validate({"x": 0.0, "lr": 0.1, "opt": "adam", "momentum": 0.5})
    with pytest.raises(tl.ConfigError, match="outside LogFloat"):
        space.validate({"x": 0.0, "lr": 5.0, "opt": "adam"})


def test_names_lists_children_and_active_follows_the_parent(space):
    assert space.names == ["x", "lr", "opt", "momentum"]
    assert list(space.active({"opt": "adam"})) == ["x", "lr", "opt"]
    assert list(space.active({"opt": "sgd"})) == ["x", "lr", "opt", "momentum"]


@pytest.mark.parametrize("stored", [
    '{"lr": {"type": "logfloat", "low": 0.001}}', '{"lr": {"type": "float"}}', '{"lr": null}', '"lr"', "[[[[",
    '{"c": {"type": "choice", "values": [1], "children": [{"value": 1}]}}', '{"not a name": {"type": "int", "low": 0, "high": 2}}',
    '{"n": {"type": "int", "low": 0, "high": 1e999}}', "[" * 100_000,
])
def test_a_stored_space_that_is_not_one_raises_storage_error_naming_it(stored):
    with pytest.raises(tl.StorageError, match=r"^Corrupt space: the space of study 's' is not a valid space \(.+\); "
                                              r"repair or delete that row in the database\.$"):
        space_from_json(stored, "the space of study 's'")


def test_a_repr_keeps_bounds_of_zero_and_builds_the_same_parameter():
    for param in (tl.Float(0.0, 0.5, step=0.1), tl.Int(0, 3), tl.Float(-1.0, 0.0)):
        text = repr(param)
        assert "low=" in text and "high=" in text
        assert eval(text, {type(param).__name__: type(param)}) == param  # noqa: S307 - our own repr
