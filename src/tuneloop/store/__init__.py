"""The store: everything measured lives here; everything shown reads from here."""

from tuneloop.store.records import StudyRecord, StudySummary, TrialRecord, TrialState
from tuneloop.store.schema import SCHEMA_VERSION
from tuneloop.store.store import DEFAULT_URL, Store, resolve_url

__all__ = [
    "DEFAULT_URL",
    "SCHEMA_VERSION",
    "Store",
    "StudyRecord",
    "StudySummary",
    "TrialRecord",
    "TrialState",
    "resolve_url",
]
