"""Study-wide analyses off the request path: computed on one background thread, served stale
while a newer one computes.

The dashboard's study page polls; an analysis such as fANOVA importance costs seconds at
thousands of trials. Each result is kept with the key it was computed from (the study's finished
trials); a request whose key is newer starts the computation (once) and is answered at once with
the previous result and its age, or with nothing yet. A report (``wait=True``) waits for the
current one instead. The dashboard's importance fit itself runs in a worker process
(:mod:`tuneloop.views._worker`): this thread only waits for it, without holding the interpreter.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

MAX_ENTRIES = 64  # studies remembered per process (a server watching more recomputes the oldest)


@dataclass
class _Entry:
    key: Hashable
    value: Any
    computed_at: float
    size: int  # how many trials it was computed from


class Background:
    """One worker thread and the latest result of each (study, analysis)."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._done: dict[Hashable, _Entry] = {}
        self._pending: dict[Hashable, tuple[Hashable, Future[Any]]] = {}
        self._pool: ThreadPoolExecutor | None = None

    def known(self, slot: Hashable) -> bool:
        """Whether ``slot`` holds a result (of any key)."""
        with self._lock:
            return slot in self._done

    def get(self, slot: Hashable, key: Hashable, size: int, compute: Callable[[], Any], *, wait: bool,
            empty: Any = None, raises: bool = False, here: bool = False) -> tuple[Any, dict[str, Any]]:
        """The result for ``key`` in ``slot`` and its status: ``ready``, ``stale`` (an older key's result
        while the new one computes) or ``computing`` (nothing yet), with how many trials it was computed
        from and when (epoch seconds); ``wait`` computes it now if needed. A computation that raises gives
        ``empty``, or with ``raises`` raises to a waiting caller (and is tried again at the next call).
        ``here`` (with ``wait``) computes on the calling thread rather than the background one, so that a
        server's warm-up never queues a user's first look behind the studies it prepares."""
        with self._lock:
            entry = self._done.get(slot)
            if entry is not None and entry.key == key:
                return entry.value, self._status("ready", entry)
            found = self._pending.get(slot)
            created = found is None or found[0] != key
            pending = (key, self._submit(slot, key, size, compute, empty, raises, here=here and wait)) if created else found
            assert pending is not None
            self._pending[slot] = pending
        if created and here and wait:  # only its creator runs it; any other caller waits for it below
            getattr(pending[1], "run_here")()  # noqa: B009 - set on the futures _submit makes for here
        if wait:
            done: _Entry = pending[1].result()
            return done.value, self._status("ready", done)
        if entry is None:
            return empty, {"state": "computing", "trials": None, "computed_at": None}
        return entry.value, self._status("stale", entry)

    def _submit(self, slot: Hashable, key: Hashable, size: int, compute: Callable[[], Any], empty: Any,
                raises: bool, *, here: bool = False) -> Future[Any]:

        def run() -> _Entry:
            try:
                value = compute()  # the callers turn their expected failures into an empty value
            except Exception:
                if raises:
                    with self._lock:
                        if self._pending.get(slot, (None,))[0] == key:
                            del self._pending[slot]  # the next call tries again
                    raise
                value = empty  # an unforeseen failure: no panel, rather than a slot stuck computing
            done = _Entry(key, value, time.time(), size)
            with self._lock:
                if len(self._done) >= self.max_entries and slot not in self._done:
                    oldest = min(self._done, key=lambda s: self._done[s].computed_at)
                    del self._done[oldest]
                current = self._done.get(slot)
                # a slower, older computation never replaces a newer result
                if current is None or self._pending.get(slot, (None,))[0] == key:
                    self._done[slot] = done
                if self._pending.get(slot, (None,))[0] == key:
                    del self._pending[slot]
            return done

        if here:  # the caller runs it (get(), just after it is registered as pending): others wait on the future
            future: Future[Any] = Future()

            def run_here() -> None:
                if not future.set_running_or_notify_cancel():
                    return
                try:
                    future.set_result(run())
                except BaseException as exc:  # noqa: BLE001 - handed to whoever waits, as the pool would
                    future.set_exception(exc)

            future.run_here = run_here  # type: ignore[attr-defined]
            return future
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tuneloop-views")
        return self._pool.submit(run)

    @staticmethod
    def _status(state: str, entry: _Entry) -> dict[str, Any]:
        # when, not how long ago: a polling page redraws only when the answer changes
        return {"state": state, "trials": entry.size, "computed_at": round(entry.computed_at, 3)}


BACKGROUND = Background()
