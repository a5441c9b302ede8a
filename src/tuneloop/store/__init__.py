"""The store: everything measured lives here; everything shown reads from here.

The records and the protocol load with the package; what talks to a database (``Store``,
``LogBatch``, leases, URLs: SQLAlchemy, a quarter of a second) loads on first use, so a worker
process, which never opens the store, does not pay for it (PEP 562 ``__getattr__``)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tuneloop.store._protocol import StoreProtocol
from tuneloop.store.records import (
    AlertRecord,
    HistogramRecord,
    JobRecord,
    JobState,
    SampleRecord,
    SliceRecord,
    StudyRecord,
    StudySummary,
    TrialRecord,
    TrialState,
)

if TYPE_CHECKING:
    from tuneloop.store._batch import LogBatch
    from tuneloop.store._leases import Lease
    from tuneloop.store._open import DEFAULT_URL, resolve_url
    from tuneloop.store.schema import SCHEMA_VERSION
    from tuneloop.store.store import Store

_LAZY = {"LogBatch": "tuneloop.store._batch", "Lease": "tuneloop.store._leases", "DEFAULT_URL": "tuneloop.store._open",
         "resolve_url": "tuneloop.store._open", "SCHEMA_VERSION": "tuneloop.store.schema", "Store": "tuneloop.store.store"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tuneloop.store' has no attribute {name!r}")


__all__ = [
    "AlertRecord",
    "DEFAULT_URL",
    "HistogramRecord",
    "JobRecord",
    "JobState",
    "Lease",
    "LogBatch",
    "SCHEMA_VERSION",
    "SampleRecord",
    "SliceRecord",
    "Store",
    "StoreProtocol",
    "StudyRecord",
    "StudySummary",
    "TrialRecord",
    "TrialState",
    "resolve_url",
]
