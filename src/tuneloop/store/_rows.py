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


_TRIAL_STATES = {s.value: s for s in TrialState}
_decoder: Any = json.JSONDecoder()  # what json.loads decodes with (NaN and infinities allowed)
_scan = _decoder.scan_once  # its scanner: the object at the start of a text, and where it ends


def _object(text: Any, what: str, number: Any, id_: Any) -> dict[str, Any]:
    """:func:`loads_object` of a trial's column (``what``: "params" or "values"), fast for the usual stored
    object; anything else (NULL, whitespace, a corrupt value) goes through loads_object, which says so."""
    if type(text) is str and text[:1] == "{":
        if text == "{}":
            return {}
        try:
            value, end = _scan(text, 0)
        except (ValueError, StopIteration, RecursionError):
            value, end = None, -1
        if end == len(text) and type(value) is dict:
            return value
    return loads_object(text, f"the {what} of trial {number} (id {id_})")


_COLUMNS = ("id", "study_id", "number", "state", "params", "seed", "attempt", "value", "values", "error",
            "created_at", "started_at", "finished_at")  # schema.trials in order: what select(trials) gives
_layout: tuple[Any, bool] = (None, False)  # the last result's metadata, and whether its rows are _COLUMNS


def _columns(row: Any) -> tuple[Any, ...] | None:
    """The row's values in ``_COLUMNS`` order when it is a SQLAlchemy row of exactly those columns (read by
    unpacking: a named attribute of a Row costs ten times more); None otherwise (read by name)."""
    global _layout
    parent = getattr(row, "_parent", None)  # one per result: its column names are checked once per result
    if parent is None:
        return None
    last = _layout
    if last[0] is not parent:
        last = _layout = (parent, tuple(getattr(row, "_fields", ())) == _COLUMNS)
    return tuple(row) if last[1] else None


def trial_record(row: Any, attrs: dict[str, Any] | None = None) -> TrialRecord:
    """A trials row as a :class:`TrialRecord`, its state and JSON columns checked."""
    columns = _columns(row)
    if columns is None:
        columns = (row.id, row.study_id, row.number, row.state, row.params, row.seed, row.attempt, row.value,
                   row.values, row.error, row.created_at, row.started_at, row.finished_at)
    id_, study_id, number, stored, params, seed, attempt, value, values, error, created, started, finished = columns
    state = _TRIAL_STATES.get(stored) if type(stored) is str else None
    if state is None:
        state = word(TrialState, stored, f"the state of trial {number} (id {id_})")
    return TrialRecord._read(id_, number, state, _object(params, "params", number, id_), seed, attempt, value,
                             _object(values, "values", number, id_), error, created, started, finished, study_id,
                             attrs or {})
