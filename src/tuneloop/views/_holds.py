"""Holds: a browser drawing a study page pauses the dashboard's importance fit until it has drawn.

A fresh server starts the importance fits of its most recent studies at once (:mod:`tuneloop.views._warm`),
so that a user who opens one finds it computed; but a user who opens it at once finds the fit (seconds of
a core at 1,000 trials) running beside the browser's drawing, which it slowed from 1.39 s to 1.57-1.69 s
on a 2-core machine (docs/dashboard.md; SCHED_IDLE did no better: the fit and the browser share the cores'
caches, not only their time). So the plots come first: serving a study page takes a hold, which stops
the worker process (:func:`tuneloop.views._worker.pause`) until the page says its plots have drawn (it
releases its hold) or ``limit_s`` has passed (a page closed while it drew). The importance then arrives
later by as long as pages held it.

A hold is the server's own random token, written into the page it served, and taken only for a page the
browser opened itself or from the dashboard (``Sec-Fetch-Site``), so another site's ``<img>`` cannot
take one. Holds cannot starve the fit: a pause lasts ``limit_s`` at most, and after each one the fit runs
at least as long as it was paused before the next can begin (paused half the time at the very most).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable

HOLD_S = 4.0  # the longest a page may pause the fit (about twice a cold 10,000-trial page's drawing here)
MAX_HOLDS = 64  # holds remembered at once (more: the oldest go)


class Holds:
    """The live holds, and the pause they call for. ``pause(True)`` stops the fit, ``pause(False)`` lets
    it go on; ``clock`` is monotonic seconds."""

    def __init__(self, pause: Callable[[bool], None], limit_s: float = HOLD_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit_s = limit_s
        self._pause = pause
        self._clock = clock
        self._lock = threading.Lock()
        self._holds: dict[str, float] = {}  # token -> when it lapses
        self._since: float | None = None  # when the current pause began (None: not paused)
        self._free_until = 0.0  # after a pause: no new one before then (the fit runs as long as it was paused)
        self._timer: threading.Timer | None = None

    @property
    def paused(self) -> bool:
        """Whether the fit is paused now."""
        with self._lock:
            return self._since is not None

    def hold(self) -> str:
        """A new hold (its token): the fit pauses until it is released, for ``limit_s`` at most."""
        token = secrets.token_urlsafe(16)
        with self._lock:
            now = self._clock()
            if now >= self._free_until:
                while len(self._holds) >= MAX_HOLDS:
                    del self._holds[next(iter(self._holds))]
                self._holds[token] = now + self.limit_s
            self._apply(now)
        return token

    def release(self, token: str) -> None:
        """End the hold ``token`` (a page has drawn); an unknown or lapsed one changes nothing."""
        with self._lock:
            self._holds.pop(token, None)
            self._apply(self._clock())

    def clear(self) -> None:
        """End every hold, and any pause (a server's shutdown; a test's end)."""
        with self._lock:
            self._holds.clear()
            self._apply(self._clock())
            self._free_until = 0.0

    def _lapse(self) -> None:
        with self._lock:
            self._apply(self._clock())

    def _apply(self, now: float) -> None:
        """Pause or go on as the live holds say, and wake again when the next one lapses. Called with the lock."""
        self._holds = {t: until for t, until in self._holds.items() if until > now}
        if self._since is not None and now - self._since >= self.limit_s:  # paused long enough on end
            self._holds.clear()
        want = bool(self._holds)
        if want != (self._since is not None):
            if not want:  # the fit now runs at least as long as it was paused before the next pause
                assert self._since is not None
                self._free_until = now + (now - self._since)
            self._since = now if want else None
            self._pause(want)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if want:
            assert self._since is not None
            wake = min(min(self._holds.values()), self._since + self.limit_s)
            self._timer = threading.Timer(max(0.0, wake - now), self._lapse)
            self._timer.daemon = True
            self._timer.start()


def _pause_worker(paused: bool) -> None:
    from tuneloop.views._worker import pause

    pause(paused)


HOLDS = Holds(_pause_worker)
