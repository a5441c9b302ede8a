"""Property tests: any space survives its JSON round trip, and every searcher's proposals stay
inside the space, whatever names, bounds and Choice values the space holds (hostile ones too)."""

from __future__ import annotations

import json
import math

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import tuneloop as tl
from tuneloop.search import Outcome, searchers
from tuneloop.space import space_from_json

# parameter names are identifiers (trial.params.NAME), unicode ones included; Choice values are anything
NAMES = st.from_regex(r"[A-Za-z_\u00c0-\u00ff\u4e00-\u4e10][A-Za-z0-9_\u00c0-\u00ff]{0,20}", fullmatch=True).filter(
    str.isidentifier)
FINITE = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False)
CHOICE_VALUES = st.one_of(st.text(max_size=20), st.integers(-(2**62), 2**62), st.booleans(), st.none(), FINITE)


@st.composite
def params(draw: st.DrawFn, depth: int = 0) -> tl.Param:
    kind = draw(st.sampled_from(["float", "log", "int", "choice"] + (["conditional"] if depth == 0 else [])))
    if kind == "float":
        low = draw(FINITE)
        width = draw(st.floats(min_value=1e-6, max_value=1e6))
        assume(low + width > low)  # a width below the float spacing at low adds nothing
        return tl.Float(low, low + width)
    if kind == "log":
        low = draw(st.floats(min_value=1e-8, max_value=1e3))
        return tl.LogFloat(low, low * draw(st.floats(min_value=1.5, max_value=1e6)))
    if kind == "int":
        low = draw(st.integers(-(10**6), 10**6))
        log = draw(st.booleans())
        low = max(low, 1) if log else low
        return tl.Int(low, low + draw(st.integers(1, 10**6)), log=log)
    values = draw(st.lists(CHOICE_VALUES, min_size=1, max_size=5, unique_by=lambda v: (type(v), json.dumps(v))))
    if kind == "choice":
        return tl.Choice(values)
    child = draw(st.dictionaries(NAMES, params(depth=1), min_size=1, max_size=2))
    return tl.Choice({values[0]: child, **{v: {} for v in values[1:]}}) if isinstance(values[0], str) else tl.Choice(
        values)


@st.composite
def spaces(draw: st.DrawFn) -> tl.Space:
    raw = draw(st.dictionaries(NAMES, params(), min_size=1, max_size=4))
    try:
        return tl.Space(raw)
    except tl.ConfigError:  # a child reusing a top-level name: a space refuses it
        assume(False)
        raise


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example, HealthCheck.filter_too_much])
@given(spaces())
def test_any_space_survives_its_json_round_trip(space):
    text = json.dumps(space.to_json())  # what the store writes
    again = space_from_json(json.loads(text))
    assert again == space
    assert again.to_json() == space.to_json()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example, HealthCheck.filter_too_much])
@given(spaces(), st.sampled_from(["random", "sobol", "tpe", "grid", "cmaes", "gp"]), st.integers(0, 2**31 - 1))
def test_every_searcher_proposes_only_points_of_the_space(space, name, seed):
    searcher = searchers.create(name, space=space, seed=seed, mode="min")
    for _ in range(6):
        proposals = searcher.ask(1)
        if not proposals:
            break
        p = proposals[0]
        space.validate(p.params)  # raises when a value is outside its bounds or a name is missing/extra
        for value in p.params.values():
            assert not (isinstance(value, float) and not math.isfinite(value))
        searcher.tell(Outcome(p.params, "completed", float(len(json.dumps(p.params, default=str)) % 7), [], p.token))
