"""A dashboard server's start: what its first look at a study would otherwise wait for, done before.

A fresh server's first study request used to wait about a second for imports alone (SciPy's
statistics for the boundary check: 0.8 s of the 0.84 s measured at 1,000 trials), then for the
study's trial-drawn parts. :func:`warm_up` imports those modules while the server starts, and
computes the parts (and starts the importance) of the most recently active studies on a thread of
its own, waiting (a few seconds at most) for the first of them before the server answers, so the
study a user opens first is ready when they do.
"""

from __future__ import annotations

import threading

from tuneloop.store import Store

RECENT = 4  # studies prepared at start: the most recently active ones
FIRST_WAIT_S = 3.0  # how long a start waits for the most recent study (then it goes on in the background)


def warm_up(store: Store, recent: int = RECENT, wait: float = FIRST_WAIT_S) -> threading.Thread:
    """Import what the study views compute with, then prepare the ``recent`` most recently active
    studies' views on a thread of their own (returned), waiting up to ``wait`` seconds for the first:
    the server prints its address once the study a user most likely opens first is ready (0.4 s at
    10,000 trials), and a huge one goes on preparing in the background. Nothing a database holds can
    make it fail: a study that cannot be listed or drawn is passed over."""
    import scipy.special  # the boundary check's and the forecasts' functions
    import scipy.stats  # noqa: F401 - imported for its cost, now rather than in a first request

    from tuneloop.views._study import prepare

    first = threading.Event()

    def run() -> None:
        try:
            try:  # a forged database (a timestamp that is text, say) must not stop the server: its pages say why
                names = [s.name for s in sorted(store.studies(), key=lambda s: s.last_activity or 0.0, reverse=True)]
            except Exception:  # noqa: BLE001
                return
            for name in names[:recent]:
                try:
                    prepare(store, name)  # its parts computed here; importance starts in the background
                except Exception:  # noqa: BLE001 - a study that cannot be drawn says why when it is asked for
                    continue
                finally:
                    first.set()  # the first study is ready (or cannot be): the server may answer
        finally:
            first.set()

    thread = threading.Thread(target=run, name="tuneloop-warm-up", daemon=True)
    thread.start()
    first.wait(wait)
    return thread
