"""The store: everything measured lives here; everything shown reads from here."""

from tuneloop.store._batch import LogBatch
from tuneloop.store._leases import Lease
from tuneloop.store._open import DEFAULT_URL, resolve_url
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
from tuneloop.store.schema import SCHEMA_VERSION
from tuneloop.store.store import Store

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
