"""Property tests: whatever goes into the store comes back out equal, for arbitrary study, parameter
and metric names (any unicode), parameter values (64-bit integers, NaN and infinities, nested JSON)
and metric values (NaN, inf, -inf). NaN compares equal to NaN here; an objective value of NaN is
read back as None, as documented (the column holds NULL for it)."""

import itertools
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tuneloop as tl
from tuneloop.store import Store

INT64 = st.integers(-(2**63), 2**63 - 1)
FLOATS = st.floats(allow_nan=True, allow_infinity=True)
NAMES = st.text(min_size=1, max_size=60)
IDENTIFIERS = st.from_regex(r"[^\W\d]\w{0,15}", fullmatch=True).filter(str.isidentifier)
SCALARS = st.none() | st.booleans() | INT64 | FLOATS | st.text(max_size=40)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(NAMES, inner, max_size=4),
                    max_leaves=12)
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def same(a, b) -> bool:
    """Equal, with NaN equal to NaN, types kept apart (1 is not 1.0 is not True) and key order kept."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@st.composite
def params(draw):
    kind = draw(st.sampled_from(["float", "logfloat", "int", "choice"]))
    if kind == "choice":
        values = draw(st.lists(st.none() | st.booleans() | INT64 | FLOATS | st.text(max_size=30), min_size=1,
                               max_size=5, unique_by=lambda v: (type(v), repr(v))))
        return tl.Choice(values)
    if kind == "int":
        low, high = sorted(draw(st.lists(INT64, min_size=2, max_size=2, unique=True)))
        return tl.Int(low, high)
    finite = st.floats(min_value=1e-300 if kind == "logfloat" else -1e300, max_value=1e300)
    low, high = sorted(draw(st.lists(finite, min_size=2, max_size=2, unique=True)))
    return tl.Float(low, high) if kind == "float" else tl.LogFloat(low, high)


SPACES = st.dictionaries(IDENTIFIERS, params(), min_size=1, max_size=4).map(tl.Space)


def test_a_study_comes_back_as_it_went_in(tmp_path_factory):
    store = Store(str(tmp_path_factory.mktemp("props") / "studies.db"))
    numbers = itertools.count()

    @SETTINGS
    @given(name=NAMES, metric=NAMES, mode=st.sampled_from(["min", "max"]), space=SPACES,
           config=st.dictionaries(NAMES, JSON, max_size=4))
    def check(name, metric, mode, space, config):
        name = f"{name}#{next(numbers)}"  # each example its own study (names are unique in a store)
        store.create_study(name, metric, mode, space, config)
        back = store.get_study(name)
        assert (back.name, back.metric, back.mode) == (name, metric, mode)
        assert same(back.space.to_json(), space.to_json())
        assert same(back.config, config)
        assert name in {s.name for s in store.studies()}

    check()
    store.close()


def test_a_trial_and_its_metrics_come_back_as_they_went_in(tmp_path_factory, space):
    store = Store(str(tmp_path_factory.mktemp("props") / "trials.db"))
    study = store.create_study("props", "loss", "min", space, {})
    numbers = itertools.count()

    @SETTINGS
    @given(values=st.dictionaries(NAMES, JSON, max_size=5), seed=INT64, value=FLOATS,
           finals=st.dictionaries(NAMES, FLOATS, max_size=4), error=st.none() | st.text(max_size=200),
           points=st.lists(st.tuples(INT64, NAMES, FLOATS), max_size=8))
    def check(values, seed, value, finals, error, points):
        number = next(numbers)
        trial_id = store.create_trial(study.id, number, values, seed)
        store.add_points([(trial_id, 0, step, name, v) for step, name, v in points])
        store.finish_trial(trial_id, "completed", value, finals, error=error)
        (back,) = store.trials(study.id, numbers=[number])
        assert same(back.params, values) and back.seed == seed and back.error == error
        assert same(back.value, None if math.isnan(value) else value)  # NULL holds NaN
        assert same(back.values, finals)
        expected: dict[str, list] = {}
        for step, name, v in points:
            expected.setdefault(name, []).append((step, v))
        series = store.series([trial_id])[trial_id]
        assert list(series) == list(expected)
        assert all(same([list(p) for p in series[n]], [list(p) for p in expected[n]]) for n in expected)

    check()
    store.close()
