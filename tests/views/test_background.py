"""Study-wide analyses off the request path: a poll is answered at once, with the previous result
and its age while a newer one computes; a report waits; a failing computation leaves no slot stuck."""

from __future__ import annotations

import threading

import pytest

import tuneloop as tl
from tuneloop.store import Store
from tuneloop.views import study_view
from tuneloop.views._background import Background


def _blocking(value, gate: threading.Event, started: threading.Event):
    def compute():
        started.set()
        assert gate.wait(30), "the test never released the computation"
        return value
    return compute


def test_a_poll_does_not_wait_and_gets_the_previous_result_while_the_new_one_computes():
    bg = Background()
    gate, started = threading.Event(), threading.Event()
    value, status = bg.get("s", 1, 10, _blocking({"x": 1.0}, gate, started), wait=False, empty={})
    assert value == {} and status == {"state": "computing", "trials": None, "computed_at": None}
    assert started.wait(30)
    gate.set()
    value, status = bg.get("s", 1, 10, lambda: {"never": 0.0}, wait=True)  # the same key: not computed again
    assert value == {"x": 1.0} and status["state"] == "ready" and status["trials"] == 10

    gate2, started2 = threading.Event(), threading.Event()
    value, status = bg.get("s", 2, 11, _blocking({"x": 2.0}, gate2, started2), wait=False)
    assert value == {"x": 1.0} and status["state"] == "stale" and status["trials"] == 10 and status["computed_at"] > 0
    assert started2.wait(30)
    value, status = bg.get("s", 2, 11, lambda: {"never": 0.0}, wait=False)  # asked again: still the one computation
    assert value == {"x": 1.0} and status["state"] == "stale"
    gate2.set()
    value, status = bg.get("s", 2, 11, lambda: {"never": 0.0}, wait=True)
    assert value == {"x": 2.0} and status["state"] == "ready" and status["trials"] == 11


def test_a_computation_that_raises_gives_the_empty_value_and_the_next_key_computes_again():
    bg = Background()

    def broken():
        raise RuntimeError("a forest that could not be fitted")

    value, status = bg.get("s", 1, 5, broken, wait=True, empty={})
    assert value == {} and status["state"] == "ready" and status["trials"] == 5
    assert bg.get("s", 2, 6, lambda: {"x": 1.0}, wait=True, empty={})[0] == {"x": 1.0}


@pytest.mark.slow  # 2.4-7.7 s here (a Ray cluster, a browser, a subprocess): keeps the default run under 5 min
def test_the_study_page_answers_at_once_and_the_report_waits_for_the_importance(storage):
    with Store(storage) as store:
        record = store.create_study("imp", "loss", "min", tl.Space(x=tl.Float(0.0, 1.0), y=tl.Float(0.0, 1.0)), {})
        for n in range(12):
            trial = store.create_trial(record.id, n, {"x": n / 12, "y": (n * 7 % 12) / 12}, seed=n)
            store.finish_trial(trial, "completed", (n / 12 - 0.3) ** 2, {"loss": (n / 12 - 0.3) ** 2})
        first = study_view(store, "imp", wait=False)
        assert first["importance_status"]["state"] == "computing" and first["importance"] == {}  # never waits
        waited = study_view(store, "imp")
        assert waited["importance_status"]["state"] == "ready" and waited["importance_status"]["trials"] == 12
        assert max(waited["importance"], key=waited["importance"].get) == "x"  # y is noise
        again = study_view(store, "imp", wait=False)
        assert again["importance"] == waited["importance"] and again["importance_status"]["state"] == "ready"


def test_a_poll_after_a_change_answers_with_the_last_trials_while_they_recompute(storage):
    from tuneloop.views import study_response

    with Store(storage) as store:
        record = store.create_study("live", "loss", "min", tl.Space(x=tl.Float(0.0, 1.0)), {})
        first = store.create_trial(record.id, 0, {"x": 0.5}, seed=0)
        store.finish_trial(first, "completed", 0.25, {"loss": 0.25})
        view, tag = study_response(store, "live", wait=False)  # the first look waits: nothing to show before
        assert view["counts"]["total"] == 1 and view["trials_status"]["state"] == "ready"
        _, tag = study_response(store, "live")  # settled: the importance in too
        store.create_trial(record.id, 1, {"x": 0.1}, seed=1)
        stale, stale_tag = study_response(store, "live", wait=False)
        assert stale["counts"]["total"] == 1 and stale["trials_status"]["state"] == "stale"
        assert stale_tag == tag  # nothing new to show yet: the browser keeps what it has
        fresh, fresh_tag = study_response(store, "live")
        assert fresh["counts"] == {"total": 2, "states": {"completed": 1, "running": 1}} and fresh_tag != tag


def test_a_computation_run_here_leaves_the_background_thread_to_others():
    """A server's warm-up prepares studies on its own thread (``here``): meanwhile a user's first look at
    another study is computed on the background thread, not queued behind the warm-up; a second caller
    of the slot being prepared waits for that one computation."""
    bg = Background()
    gate, started = threading.Event(), threading.Event()
    prepared: list = []
    ran_on: list = []
    blocking = _blocking("parts", gate, started)
    warm = threading.Thread(target=lambda: prepared.append(bg.get(
        "big", 1, 10, lambda: ran_on.append(threading.current_thread()) or blocking(), wait=True, here=True)))
    warm.start()
    assert started.wait(30)
    assert warm.is_alive() and ran_on == [warm]  # computed on the caller's thread
    value, status = bg.get("other", 1, 3, lambda: "other parts", wait=True)  # not behind "big": it is not in the pool
    assert value == "other parts" and status["state"] == "ready" and not gate.is_set()
    joined: list = []
    second = threading.Thread(target=lambda: joined.append(  # another warm-up of the same slot: waits for the first
        bg.get("big", 1, 10, lambda: "computed twice", wait=True, here=True)))
    second.start()
    gate.set()
    warm.join(30)
    second.join(30)
    assert prepared[0][0] == "parts" and joined[0][0] == "parts"  # one computation, both answered with it
