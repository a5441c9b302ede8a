"""The study-wide importance fit in a worker process, so that it never holds the server's interpreter.

fANOVA at thousands of trials is seconds of Python loops and sklearn; on a thread of the dashboard's
server it competes for the GIL with the requests, and a poll that should take milliseconds waits
behind it. The dashboard's background thread (:mod:`tuneloop.views._background`) therefore hands the
fit to one child process and waits for its answer (waiting releases the GIL). A report
(``wait=True``) computes in its own process: one command pays no process start.

The worker is a ``python`` running :func:`main`, started on first use and reused. It speaks JSON
lines over its stdin and stdout: a request holds plain data only (the space's JSON form, each
completed trial's params and value, the mode), the answer the importance shares, the same to the
last bit as a fit in the server (same data, same seeded forest). Nothing is pickled, and unlike a
multiprocessing "spawn" child it never imports the user's main script. It ends when its stdin
closes, so it ends with the server however the server ends (even killed). A worker that dies
(killed, out of memory) gives ``{}`` (no panel) and the next fit starts a new one: the page is never
stuck "computing".
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import Any

from tuneloop.analysis import importance
from tuneloop.space import Space, space_from_json
from tuneloop.store import TrialRecord, TrialState

FIT_LIMIT_S = 300.0  # a fit that takes longer is stopped (a hung worker): no panel, the next fit starts a new one

_lock = threading.Lock()  # one request at a time on the worker's pipes
_worker: subprocess.Popen[str] | None = None
_closing = False  # the interpreter is exiting: no new worker, a running one is stopped
last_pid: int | None = None  # the process that computed the latest worker result (never this one)
_signal_lock = threading.Lock()  # pausing against starting a worker (a fit holds _lock for its whole length)
_paused = False  # the worker is to be stopped (SIGSTOP): a page is drawing (tuneloop.views._holds)


def importance_or_nothing(space: Space, trials: Sequence[TrialRecord], mode: str) -> dict[str, float]:
    """:func:`~tuneloop.analysis.importance`, or ``{}`` where fANOVA cannot fit (values like 1e300):
    no panel, rather than a 500."""
    try:
        return importance(space, trials, mode)
    except (AssertionError, ArithmeticError, ValueError):
        return {}


def importance_in_worker(space: Space, done: Sequence[TrialRecord], mode: str) -> dict[str, float]:
    """:func:`importance_or_nothing` over the completed trials ``done``, computed in the worker process;
    ``{}`` if the worker died or could not answer (the next call starts a new one)."""
    global last_pid
    if getattr(sys, "frozen", False):  # a frozen application: sys.executable is the application, not Python
        return importance_or_nothing(space, done, mode)
    try:
        request = json.dumps({"space": space.to_json(), "rows": [[t.params, t.value] for t in done], "mode": mode},
                             allow_nan=False)
    except (TypeError, ValueError):  # a value JSON cannot carry: no panel
        return {}
    with _lock:
        worker = _started()
        if worker is None:  # exiting, or no worker could start
            return {}
        limit = threading.Timer(FIT_LIMIT_S, worker.kill)  # a hung fit ends: the read below sees the end
        limit.daemon = True
        limit.start()
        try:
            assert worker.stdin is not None and worker.stdout is not None
            worker.stdin.write(request + "\n")
            worker.stdin.flush()
            line = worker.stdout.readline()
            answer = json.loads(line) if line else None
        except (OSError, ValueError):  # a broken pipe, or a line that is not an answer
            answer = None
        finally:
            limit.cancel()
        if not isinstance(answer, dict):
            _stop(worker)  # dead, stopped or confused: the next fit starts a new one
            return {}
    last_pid = answer.get("pid")
    shares = answer.get("shares")  # absent when the fit raised: that study state has no panel, the worker lives on
    return {str(k): float(v) for k, v in shares.items()} if isinstance(shares, dict) else {}


def _started() -> subprocess.Popen[str] | None:
    """The running worker, started if there is none (or the last one died); ``None`` while exiting or when
    none can start. Called with ``_lock`` held.

    The child imports from this process's ``sys.path`` exactly, with ``-P``: never from the folder the
    server runs in, where a file named like a module (``optuna.py``) would otherwise run as that module."""
    global _worker
    if _worker is not None and _worker.poll() is not None:
        _stop(_worker)  # died while idle: its pipes closed, a new one started
    if _worker is None and not _closing:
        code = f"import sys; sys.path[:] = {sys.path!r}; from tuneloop.views._worker import main; main()"
        # its own process group: should the server die while the worker is stopped (a page drawing), the group
        # is orphaned with a stopped member, and the kernel sends it SIGHUP and SIGCONT: it ends, never stays stopped
        try:
            started = subprocess.Popen([sys.executable, "-P", "-c", code], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, encoding="utf-8",
                                       process_group=0 if os.name == "posix" else None)
        except OSError:
            return None
        with _signal_lock:
            _worker = started
            if _paused:  # started while a page draws: it waits too (its request sits in the pipe)
                _signal(started, paused=True)
    return _worker


def pause(paused: bool) -> None:
    """Stop the worker where it is (``SIGSTOP``), or let it go on (``SIGCONT``); one started meanwhile
    starts stopped. A dashboard pauses it while a browser draws a study page (:mod:`tuneloop.views._holds`):
    a fit of seconds on the same cores as the browser slows the drawing by a fifth (measured at 1,000
    trials), and a paused fit loses nothing but the time it waits. Where there is no ``SIGSTOP``
    (Windows, where the worker also runs at the server's priority: no ``os.nice``) it runs on."""
    global _paused
    with _signal_lock:
        _paused = paused
        worker = _worker
        if worker is not None:
            _signal(worker, paused=paused)


def _signal(worker: subprocess.Popen[str], *, paused: bool) -> None:
    number = getattr(signal, "SIGSTOP" if paused else "SIGCONT", None)
    if number is None or worker.poll() is not None:
        return
    try:
        os.kill(worker.pid, number)
    except OSError:  # ended meanwhile
        pass


def _stop(worker: subprocess.Popen[str]) -> None:
    """End ``worker`` and forget it. Called with ``_lock`` held."""
    global _worker
    if _worker is worker:
        _worker = None
    for stream in (worker.stdin, worker.stdout):
        try:
            if stream is not None:
                stream.close()
        except OSError:
            pass
    if worker.poll() is None:
        worker.kill()
    worker.wait()


def _exiting() -> None:
    """At exit: no new worker, and a running one is killed, so a fit in flight ends at once (the executor's
    thread that waits for it is joined before ``atexit`` handlers run). Without the lock: a fit holds it."""
    global _closing
    _closing = True
    worker = _worker
    if worker is not None and worker.poll() is None:
        worker.kill()


def stop_worker() -> None:
    """Kill the running worker now (a fit in flight gives ``{}``; the next fit starts a new one): a server's
    shutdown. uvicorn ends a SIGTERMed server by re-raising the signal once it has shut down, so the
    process dies without running ``atexit`` or threading's exit hooks, and a worker in the middle of a
    fit would go on computing for seconds (minutes at 100,000 trials) after its server is gone."""
    worker = _worker
    if worker is not None and worker.poll() is None:
        worker.kill()  # first, without the lock (a fit holds it): the waiting reader sees the end
    with _lock:
        if _worker is not None:
            _stop(_worker)


@atexit.register
def _shutdown() -> None:
    _exiting()
    with _lock:
        if _worker is not None:
            _stop(_worker)


# run before the interpreter joins the background thread that may be waiting on a fit (threading's exit
# hooks run in reverse order of registration, this one before concurrent.futures'); atexit is too late
getattr(threading, "_register_atexit", lambda hook: None)(_exiting)


def _fit(request: dict[str, Any]) -> dict[str, float]:
    """In the worker: the importance of completed trials given as (params, value)."""
    trials = [TrialRecord(id=n, number=n, state=TrialState.COMPLETED, params=params, seed=0, attempt=0, value=value,
                          values={}, error=None, created_at=0.0, started_at=None, finished_at=None)
              for n, (params, value) in enumerate(request["rows"])]
    return importance_or_nothing(space_from_json(request["space"]), trials, request["mode"])


def main() -> None:
    """The worker's loop: one JSON request per line on stdin, one answer per line on stdout, until stdin
    closes (the server ended). It runs at a lower priority: a fit gives way to the server's requests
    (and to the browser drawing on the same machine)."""
    try:
        os.nice(10)
    except (AttributeError, OSError):  # no nice (Windows) or not allowed: the same priority
        pass
    for line in sys.stdin:
        try:
            answer: dict[str, Any] = {"pid": os.getpid(), "shares": _fit(json.loads(line))}
        except Exception as exc:  # noqa: BLE001 - any failure is this request's: no panel, the worker lives on
            answer = {"pid": os.getpid(), "error": type(exc).__name__}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()

