"""A dashboard server's start prepares the most recently active studies' views in the background,
so the first look at one of them answers with its trials at once; a study that cannot be drawn
does not stop the others."""

from __future__ import annotations

import pytest

import tuneloop as tl
from tuneloop.errors import TuneloopError
from tuneloop.store import Store
from tuneloop.views import study_response, warm_up
from tuneloop.views._study import PARTS


def _study(store: Store, name: str, trials: int) -> None:
    record = store.create_study(name, "loss", "min", tl.Space(x=tl.Float(0.0, 1.0)), {})
    for n in range(trials):
        trial = store.create_trial(record.id, n, {"x": n / trials}, seed=n)
        store.finish_trial(trial, "completed", (n / trials - 0.3) ** 2, {"loss": (n / trials - 0.3) ** 2})


def test_the_recent_studies_are_prepared_and_their_first_look_does_not_wait(storage):
    with Store(storage) as store:
        _study(store, "old", 4)
        _study(store, "new", 6)  # the most recently active
        thread = warm_up(store, recent=1)
        thread.join(60)
        assert not thread.is_alive()
        new, old = (store.require_study(n).id for n in ("new", "old"))
        assert PARTS.known((store.url, new, "trials")) and not PARTS.known((store.url, old, "trials"))
        view, _ = study_response(store, "new", wait=False)
        assert view["trials_status"]["state"] == "ready" and view["counts"]["total"] == 6


def test_a_first_look_after_the_study_changed_shows_it_as_it_is(storage):
    with Store(storage) as store:
        _study(store, "grown", 3)
        thread = warm_up(store)
        thread.join(60)
        record = store.require_study("grown")
        trial = store.create_trial(record.id, 3, {"x": 0.9}, seed=3)  # another driver's trial, after the start
        store.finish_trial(trial, "completed", 0.36, {"loss": 0.36})
        view, _ = study_response(store, "grown", wait=False)  # the first look waits for the study as it is
        assert view["counts"]["total"] == 4 and view["trials_status"]["state"] == "ready"


def test_a_start_returns_once_the_most_recent_study_is_ready(storage):
    """The server prints its address after warm_up: the study a user most likely opens first is ready then,
    the others go on in the background."""
    with Store(storage) as store:
        _study(store, "old", 4)
        _study(store, "new", 6)
        thread = warm_up(store, recent=2, wait=60)
        assert PARTS.known((store.url, store.require_study("new").id, "trials"))  # before any request
        view, _ = study_response(store, "new", wait=False)
        assert view["trials_status"]["state"] == "ready" and view["counts"]["total"] == 6
        thread.join(60)
        assert PARTS.known((store.url, store.require_study("old").id, "trials"))


def test_a_study_that_cannot_be_drawn_does_not_stop_the_others(storage):
    with Store(storage) as store:
        _study(store, "fine", 3)
        _study(store, "forged", 3)  # the newest: prepared first, and it fails
        store.create_study("empty", "loss", "min", tl.Space(x=tl.Float(0.0, 1.0)), {})
        with store.engine.begin() as conn:  # a malformed stored objectives list, as a forged database holds
            from sqlalchemy import text

            conn.execute(text("UPDATE studies SET config = :c WHERE name = 'forged'"), {"c": '{"objectives": 7}'})
        thread = warm_up(store)
        thread.join(60)
        fine = store.require_study("fine").id
        assert PARTS.known((store.url, fine, "trials"))
        with pytest.raises(TuneloopError, match="objectives"):  # the forged one says why when it is asked for
            study_response(store, "forged")


def test_a_forged_timestamp_neither_stops_the_start_nor_prepares_anything(storage):
    with Store(storage) as store:
        _study(store, "forged", 3)
        with store.engine.begin() as conn:  # text in a REAL column: listing the studies raises TypeError
            from sqlalchemy import text

            conn.execute(text("UPDATE studies SET updated_at = 'x' WHERE name = 'forged'"))
        thread = warm_up(store, wait=60)  # returns: the listing failed, nothing to wait for
        thread.join(60)
        assert not thread.is_alive()
        assert not PARTS.known((store.url, store.require_study("forged").id, "trials"))
