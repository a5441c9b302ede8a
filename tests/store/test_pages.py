"""A study's trials a page at a time, sorted and filtered in SQL (the dashboard's trials table), on
SQLite and on a real PostgreSQL server: every sort key gives the order Python gives, pages tile
the whole order without overlap, missing values come last, names beyond ASCII sort too."""

import random

import pytest

import tuneloop as tl
from tuneloop.errors import ConfigError
from tuneloop.store import Store, TrialState
from tuneloop.store._pages import _sorted, sort_key

ODD = "ünï_2"  # a parameter name beyond ASCII
MIXED = [None, "auto", 3, True, False, 2.5, "Zed", "äb", -1]  # one order on every back end: numbers, then text
STATES = ["completed", "completed", "completed", "pruned", "failed", "running"]


def _fill(store: Store) -> int:
    rng = random.Random(3)
    space = tl.Space(lr=tl.LogFloat(1e-4, 1.0), act=tl.Choice(["relu", "tanh"]), **{ODD: tl.Int(0, 4)})
    record = store.create_study("paged", "loss", "min", space, {})
    for n in range(57):
        params = {"lr": round(rng.uniform(1e-4, 1.0), 4), "act": rng.choice(["relu", "tanh"])}
        if n % 3:  # a conditional parameter: missing from a third of the trials
            params[ODD] = rng.randint(0, 4)  # few values: ties, ordered by trial number
        if n % 5:
            params["mix"] = rng.choice(MIXED)  # a choice of mixed types, an explicit null among them
        if n % 4 == 1:  # what only a forged or imported row holds: a list, a NUL (PostgreSQL's jsonb refuses it)
            params["odd"] = rng.choice([["x", 1], ["é"], "a\u0000b", "b", 2])
        trial = store.create_trial(record.id, n, params, seed=n)
        state = STATES[n % len(STATES)]
        if state == "running":  # no value, no duration: last in any order
            continue
        value = round(rng.random(), 2)  # ties in the value too
        values = {"loss": value, "ms": rng.randint(1, 9)}
        if n in (7, 20):  # diverged: a stored NaN and an infinity, which SQL cannot read as JSON
            values["ms"] = float("nan") if n == 7 else float("inf")
        store.finish_trial(trial, state, value, values)
    return record.id


@pytest.fixture(params=["sqlite", "postgresql"])
def filled(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'pages.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres")
    with Store(url) as store:
        yield store, _fill(store)


KEYS = [("number", None), ("state", None), ("value", None), ("duration", None), ("param", "lr"), ("param", "act"),
        ("param", ODD), ("param", "mix"), ("param", "odd"), ("metric", "ms"), ("metric", "loss")]


def _expected(trials, key, descending):
    """Python's order: what the SQL order must equal (missing values last, ties by number)."""
    kind, name = key
    if kind in ("param", "metric"):
        return [t.number for t in _sorted(trials, key, descending)]
    get = {"number": lambda t: t.number, "state": lambda t: t.state.value, "value": lambda t: t.value,
           "duration": lambda t: t.duration}[kind]
    present = sorted((t for t in trials if get(t) is not None), key=lambda t: t.number)
    present.sort(key=get, reverse=descending)
    return [t.number for t in present] + sorted(t.number for t in trials if get(t) is None)


@pytest.mark.slow  # 2-5 s in the default run: .ci/run runs it in its second pytest call
def test_every_sort_key_pages_through_the_order_python_gives(filled):
    """All trials (their metrics hold a NaN: Python sorts those) and the pruned ones (SQL sorts them)."""
    store, study = filled
    for state in (None, TrialState.PRUNED):
        trials = [t for t in store.trials(study) if state is None or t.state == state]
        for key in KEYS:
            for descending in (False, True):
                pages, offset = [], 0
                while True:  # pages of 4: together, the whole order, each trial once
                    page = store.trial_page(study, offset=offset, limit=4, sort=key, descending=descending, state=state)
                    assert page.total == 57 and page.matched == len(trials)
                    if not page.rows:
                        break
                    pages.extend(t.number for t in page.rows)
                    offset += 4
                assert pages == _expected(trials, key, descending), (state, key, descending)


def test_a_state_filter_counts_and_pages_only_its_trials(filled):
    store, study = filled
    page = store.trial_page(study, state=TrialState.PRUNED, sort=("value", None), limit=5)
    pruned = [t for t in store.trials(study) if t.state == TrialState.PRUNED]
    assert page.matched == len(pruned) == 9 and page.total == 57 and len(page.rows) == 5
    assert all(t.state == TrialState.PRUNED for t in page.rows)
    assert [t.number for t in page.rows] == _expected(pruned, ("value", None), False)[:5]


def test_mixed_types_sort_numbers_first_then_text_with_nulls_and_nan_last(filled):
    store, study = filled
    mixed = [t.params.get("mix", "missing") for t in store.trial_page(study, sort=("param", "mix"), limit=1000).rows]
    present = [v for v in mixed if v not in (None, "missing")]
    numbers = [v for v in present if not isinstance(v, str)]
    assert present == sorted(numbers) + sorted(v for v in present if isinstance(v, str))  # True counts as 1
    assert mixed[len(present):] and set(mixed[len(present):]) == {None, "missing"}  # null and missing: last
    ms = [t.values.get("ms") for t in store.trial_page(study, sort=("metric", "ms"), descending=True, limit=1000).rows]
    assert ms[0] == float("inf") and any(v != v for v in ms[-12:])  # the NaN is among the missing, last


def test_a_numeric_parameter_sorts_as_numbers_not_text(filled):
    store, study = filled
    lrs = [t.params["lr"] for t in store.trial_page(study, sort=("param", "lr"), limit=1000).rows]
    assert lrs == sorted(lrs)  # as text, 0.0123 would come after 0.0099 and 0.1 before 0.02


def test_bad_pages_and_sort_keys_say_what_is_valid(filled):
    store, study = filled
    with pytest.raises(ConfigError, match="holds 1 to 1000 rows"):
        store.trial_page(study, limit=0)
    with pytest.raises(ConfigError, match="starts at 0"):
        store.trial_page(study, offset=-1)
    with pytest.raises(ConfigError, match=r"param:NAME \(a parameter of the study\)"):
        sort_key("param:nope", {"lr"}, {"loss"})
    with pytest.raises(ConfigError, match="use one of number, state"):
        sort_key("x" * 10_000, {"lr"}, {"loss"})
    assert sort_key(f"param:{ODD}", {ODD}, set()) == ("param", ODD)
