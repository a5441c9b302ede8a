"""Where ``fit`` learns that it runs under the population executor (a per-thread session).

Kept free of heavy imports: ``fit`` asks on every call.
"""

from __future__ import annotations

import threading
from typing import Any

_local = threading.local()


def current_session() -> Any:
    """The population session of this thread's trial, or None (train at once, sequentially)."""
    return getattr(_local, "session", None)


def set_session(session: Any) -> None:
    _local.session = session
