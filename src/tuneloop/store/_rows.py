"""Stored values in and out: JSON written compactly, and every row checked as it is decoded.

A database may come from someone else, so nothing read from it is trusted: a column that should
hold a JSON object, a state or a direction and holds anything else is a "corrupt row"
:class:`~tuneloop.errors.StorageError` naming the row and the repair, never a crash further on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any, TypeVar

from tuneloop.direction import Direction
from tuneloop.errors import StorageError
from tuneloop.store.records import JobState, TrialRecord, TrialState

Point = tuple[int, int, int, str, float]  # trial_id, attempt, step, name, value
INT64 = (-(2**63), 2**63 - 1)  # what an INTEGER column holds on both back ends

_Word = TypeVar("_Word", TrialState, Direction, JobState)


def dumps(obj: Any) -> str:
    """JSON as stored: compact; NaN and infinities allowed (a diverged trial's values keep them)."""
    return json.dumps(obj, allow_nan=True, separators=(",", ":"))


def loads(text: str | None, what: str, default: Any = None) -> Any:
    """Stored JSON (``default`` for NULL); a corrupt-row StorageError naming ``what`` when it is not JSON."""
    if text is None:
        return default
    try:
        return json.loads(text)
    except (TypeError, ValueError, RecursionError) as exc:
        raise StorageError(
            f"Corrupt row: {what} is not valid JSON ({exc}); repair or delete that row in the database."
        ) from None


def loads_object(text: str | None, what: str) -> dict[str, Any]:
    """A stored JSON object (params, values, config); NULL reads as an empty one."""
    value = loads(text, what, {})
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise StorageError(f"Corrupt row: {what} is not a JSON object but a {type(value).__name__}; "
                           f"repair or delete that row in the database.")
    return value


def word(kind: type[_Word], stored: Any, what: str) -> _Word:
    """A stored state or mode as its type; a corrupt-row StorageError when it is none of its words."""
    try:
        return kind(stored)
    except ValueError:
        words = ", ".join(repr(w.value) for w in kind)
        raise StorageError(f"Corrupt row: {what} is {stored!r:.40}, not one of {words}; "
                           f"repair or delete that row in the database.") from None


def finite_or_none(value: float | None) -> float | None:
    """A value as stored: NaN becomes NULL (infinities stay: they say which way a trial diverged)."""
    return None if value is None or math.isnan(value) else float(value)


def point_rows(points: Sequence[Point]) -> list[dict[str, Any]]:
    """Metric points (trial_id, attempt, step, name, value) as rows of the metrics table."""
    return [{"trial_id": t, "attempt": a, "step": s, "name": n, "value": finite_or_none(v)} for t, a, s, n, v in points]


def trial_record(row: Any, attrs: dict[str, Any] | None = None) -> TrialRecord:
    """A trials row as a :class:`TrialRecord`, its state and JSON columns checked."""
    what = f"trial {row.number} (id {row.id})"
    return TrialRecord(
        id=row.id, study_id=row.study_id, number=row.number,
        state=word(TrialState, row.state, f"the state of {what}"),
        params=loads_object(row.params, f"the params of {what}"), seed=row.seed, attempt=row.attempt,
        value=row.value, values=loads_object(row.values, f"the values of {what}"), error=row.error,
        created_at=row.created_at, started_at=row.started_at, finished_at=row.finished_at, attrs=attrs or {},
    )
