"""The store: everything measured lives here; everything shown reads from here."""

from tuneloop.store.records import (
    AlertRecord,
    HistogramRecord,
    SampleRecord,
    SliceRecord,
    StudyRecord,
    StudySummary,
    TrialRecord,
    TrialState,
)
from tuneloop.store.schema import SCHEMA_VERSION
from tuneloop.store.store import DEFAULT_URL, Store, resolve_url

__all__ = [
    "AlertRecord",
    "DEFAULT_URL",
    "HistogramRecord",
    "SCHEMA_VERSION",
    "SampleRecord",
    "SliceRecord",
    "Store",
    "StudyRecord",
    "StudySummary",
    "TrialRecord",
    "TrialState",
    "resolve_url",
]
