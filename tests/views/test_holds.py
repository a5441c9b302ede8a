"""Holds: a drawing study page pauses the importance fit until it has drawn, for a bounded time, and
holds can never keep the fit from running."""

from __future__ import annotations

import threading

from tuneloop.views._holds import MAX_HOLDS, Holds


class Clock:
    """Monotonic seconds the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def holds(limit_s: float = 4.0) -> tuple[Holds, list[bool], Clock]:
    calls: list[bool] = []
    clock = Clock()
    return Holds(calls.append, limit_s=limit_s, clock=clock), calls, clock


def test_a_hold_pauses_the_fit_until_it_is_released():
    h, calls, _ = holds()
    token = h.hold()
    assert calls == [True] and h.paused
    h.release(token)
    assert calls == [True, False] and not h.paused


def test_the_fit_goes_on_only_once_every_page_has_drawn():
    h, calls, _ = holds()
    first, second = h.hold(), h.hold()
    assert first != second and calls == [True]  # paused once, not twice
    h.release(first)
    assert calls == [True] and h.paused
    h.release(second)
    assert calls == [True, False]


def test_an_unknown_or_repeated_release_changes_nothing():
    h, calls, _ = holds()
    h.release("forged")
    assert calls == []
    token = h.hold()
    h.release("forged")
    assert calls == [True]
    h.release(token)
    h.release(token)
    assert calls == [True, False]


def test_a_page_that_never_draws_holds_the_fit_for_the_limit_only():
    h, calls, clock = holds(limit_s=4.0)
    h.hold()  # a page closed while it drew: it never releases
    clock.now += 3.9
    h._lapse()
    assert calls == [True]
    clock.now += 0.1
    h._lapse()
    assert calls == [True, False] and not h.paused


def test_holds_one_after_another_cannot_starve_the_fit():
    """Each new page holds again; once paused for the limit on end, the fit runs as long before the next pause."""
    h, calls, clock = holds(limit_s=4.0)
    h.hold()
    clock.now += 3.0
    h.hold()  # would hold until 7.0
    clock.now += 1.0
    h._lapse()
    assert calls == [True, False]  # 4 s paused on end: it goes on
    clock.now += 1.0
    h.hold()
    assert calls == [True, False]  # within the free time: no pause
    clock.now += 3.0
    h.hold()
    assert calls == [True, False, True]  # free time over: a page pauses it again


def test_after_a_pause_the_fit_runs_as_long_before_the_next():
    """Pages one after another, each releasing before the limit: the fit is paused half the time at most."""
    h, calls, clock = holds(limit_s=4.0)
    token = h.hold()
    clock.now += 3.0
    h.release(token)  # paused 3 s: free for 3 s
    assert calls == [True, False]
    clock.now += 2.9
    h.hold()
    assert calls == [True, False]  # within the free time: no pause
    clock.now += 0.1
    token = h.hold()
    assert calls == [True, False, True]
    h.release(token)
    assert calls == [True, False, True, False]


def test_a_flood_of_holds_is_bounded():
    h, calls, _ = holds()
    tokens = [h.hold() for _ in range(MAX_HOLDS * 3)]
    assert len(h._holds) == MAX_HOLDS and calls == [True]
    for token in tokens[-MAX_HOLDS:]:
        h.release(token)
    assert calls == [True, False]


def test_clear_ends_every_hold_and_the_pause():
    h, calls, _ = holds()
    h.hold()
    h.hold()
    h.clear()
    assert calls == [True, False] and not h.paused and h._holds == {}


def test_a_lapsed_hold_lets_the_fit_go_on_by_itself():
    """The real timer, with a real clock: no release comes, the fit goes on when the hold lapses."""
    resumed = threading.Event()
    h = Holds(lambda paused: None if paused else resumed.set(), limit_s=0.2)
    h.hold()
    assert resumed.wait(30), "the hold never lapsed"
    assert not h.paused
