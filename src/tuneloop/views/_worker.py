"""The study-wide importance fit in a worker process, so that it never holds the server's interpreter.

fANOVA at thousands of trials is seconds of Python loops and sklearn; on a thread of the dashboard's
server it competes for the GIL with the requests, and a poll that should take milliseconds waits
behind it. The dashboard's background thread (:mod:`tuneloop.views._background`) therefore hands the
fit to one child process and blocks on its future (waiting releases the GIL). The child gets plain
data only (the space's JSON form, each completed trial's params and value, the mode), rebuilds what
:func:`tuneloop.analysis.importance` needs and answers the same dict, to the last bit (same data,
same seeded forest). A report (``wait=True``) computes in its own process: one command pays no spawn.

The pool is one "spawn" worker (never fork: the server is multi-threaded), created on first use,
reused, and shut down at exit; the worker ends with the server however it ends. A worker that dies
(killed, out of memory) gives ``{}`` (no panel) and the next fit starts a new one: the page is never
stuck "computing". As with any "spawn" child, the worker imports the parent's main module: a script
calling ``study_view(..., wait=False)`` needs the usual ``if __name__ == "__main__":`` guard (the
``tuneloop`` command has it).
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import wait
from typing import Any

from tuneloop.analysis import importance
from tuneloop.space import Space, space_from_json
from tuneloop.store import TrialRecord, TrialState

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
last_pid: int | None = None  # the process that computed the latest worker result (never this one)


def importance_or_nothing(space: Space, trials: Sequence[TrialRecord], mode: str) -> dict[str, float]:
    """:func:`~tuneloop.analysis.importance`, or ``{}`` where fANOVA cannot fit (values like 1e300):
    no panel, rather than a 500."""
    try:
        return importance(space, trials, mode)
    except (AssertionError, ArithmeticError, ValueError):
        return {}


def importance_in_worker(space: Space, done: Sequence[TrialRecord], mode: str) -> dict[str, float]:
    """:func:`importance_or_nothing` over the completed trials ``done``, computed in the worker process;
    ``{}`` if the worker died (the next call starts a new one)."""
    global last_pid
    rows = [(t.params, t.value) for t in done]
    pool = _get_pool()
    try:
        pid, shares = pool.submit(_fit, space.to_json(), rows, mode).result()
    except BrokenProcessPool:  # at submit, or while it ran
        _discard(pool)
        return {}
    last_pid = pid
    return shares


def _fit(space: dict[str, Any], rows: list[tuple[dict[str, Any], float | None]], mode: str
         ) -> tuple[int, dict[str, float]]:
    """In the worker: the importance of completed trials given as (params, value), and this process's id."""
    trials = [TrialRecord(id=n, number=n, state=TrialState.COMPLETED, params=params, seed=0, attempt=0, value=value,
                          values={}, error=None, created_at=0.0, started_at=None, finished_at=None)
              for n, (params, value) in enumerate(rows)]
    return os.getpid(), importance_or_nothing(space_from_json(space), trials, mode)


def _exit_with_parent() -> None:
    """In the worker: end when the server does, however it ends. A server stopped by SIGTERM or killed
    runs no exit handler, and an idle worker would wait for work forever (it holds its queue's both ends)."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_when_ready, args=(parent.sentinel,), daemon=True,
                         name="tuneloop-parent-watch").start()


def _exit_when_ready(sentinel: int) -> None:
    wait([sentinel])  # readable once the parent has exited
    os._exit(0)


def _get_pool() -> ProcessPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_exit_with_parent)
        return _pool


def _discard(pool: ProcessPoolExecutor) -> None:
    """Forget a broken pool (once, whichever fit noticed first) so the next fit creates a new one."""
    global _pool
    with _lock:
        if _pool is pool:
            _pool = None
    pool.shutdown(wait=False, cancel_futures=True)


@atexit.register
def _shutdown() -> None:
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)
