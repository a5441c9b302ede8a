"""Riding out a database that is briefly busy or unreachable: locked, restarting, a dropped
connection. Store methods retry such failures with exponential backoff for ``retry_seconds``
(60 by default) before giving up with the cause and the fix; anything else fails at once."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from sqlalchemy.exc import DBAPIError, OperationalError

from tuneloop.errors import StorageError

F = TypeVar("F", bound=Callable[..., Any])
_depth = threading.local()


class Unavailable(StorageError):  # noqa: N818 - reads as what it is, like NotFound
    """The database was busy or unreachable: the operation may succeed if tried again."""


_READONLY = 8  # sqlite3.SQLITE_READONLY: the file or connection is read-only; waiting will not change that


def transient(exc: BaseException) -> bool:
    """Locked, restarting or disconnected, rather than wrong (or read-only)."""
    if isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlite_errorcode", None) == _READONLY:
        return False
    return isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and bool(exc.connection_invalidated))


def retrying(method: F) -> F:
    """Retry ``method`` (one transaction of its own) while the store is unavailable; calls nested
    inside it (sharing its transaction) are retried with it, not on their own."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(_depth, "active", False):
            return method(self, *args, **kwargs)
        _depth.active = True
        try:
            delay, deadline = 0.05, time.monotonic() + float(getattr(self, "retry_seconds", 60.0))
            while True:
                try:
                    return method(self, *args, **kwargs)
                except Unavailable as exc:
                    if time.monotonic() + delay > deadline:
                        raise StorageError(
                            f"{exc} It stayed unavailable for {self.retry_seconds:g} s; check that the database "
                            f"server is up and reachable, then run again (every finished trial is kept).") from None
                    time.sleep(delay)
                    delay = min(delay * 2, 2.0)
        finally:
            _depth.active = False

    return cast(F, wrapper)  # functools.wraps kept the signature of ``method``
