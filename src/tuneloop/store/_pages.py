"""A study's trials a page at a time, sorted and filtered in SQL: the dashboard's trials table.

A study of 10,000 trials is not sent to the browser whole: the table asks for the rows it shows
(``offset``, ``limit``), sorted by a column (the trial number, state, objective value, duration,
device, any parameter, or a final metric the study's objectives, constraints or judge read) and
filtered by state. The database sorts and counts; Python decodes only the rows of the page.

Parameters and metrics are JSON objects in one column each, so sorting by one reads it in SQL:
SQLite through ``json_each`` (any key, whatever its characters), PostgreSQL through ``jsonb``, both
in one order: numbers (booleans as 1 and 0) before text, text by code point. Another back end, or
a column holding what SQL cannot read as JSON (a diverged trial's NaN), sorts in Python, in the
same order. Missing values (a conditional parameter, a JSON null, a NaN, a trial still running)
come last in either direction, and ties keep the trial-number order, so pages never overlap.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError

from tuneloop.errors import ConfigError
from tuneloop.store import schema
from tuneloop.store._retry import retrying
from tuneloop.store._rows import trial_record
from tuneloop.store.records import TrialRecord, TrialState

PLAIN_SORTS = ("number", "state", "value", "duration", "device")
MAX_PAGE = 1000  # rows one request may ask for


@dataclass(frozen=True)
class TrialPage:
    """One page of a study's trials: ``rows`` (sorted), how many trials match the filter, how many
    the study has."""

    rows: list[TrialRecord]
    matched: int
    total: int


def sort_key(sort: str, params: set[str], metrics: set[str]) -> tuple[str, str | None]:
    """``sort`` as (kind, name): ``number`` ... ``device``, ``param:NAME`` or ``metric:NAME`` (a name the
    study has); a ConfigError saying which are valid otherwise."""
    if sort in PLAIN_SORTS:
        return sort, None
    kind, _, name = sort.partition(":")
    if (kind == "param" and name in params) or (kind == "metric" and name in metrics):
        return kind, name
    shown = sort if len(sort) <= 80 else sort[:77] + "..."
    raise ConfigError(f"Cannot sort by {shown!r}: use one of {', '.join(PLAIN_SORTS)}, param:NAME (a parameter of "
                      f"the study) or metric:NAME (a metric its trials report).")


class PagesMixin:
    """:meth:`trial_page`, for :class:`~tuneloop.store.Store`."""

    @retrying
    def trial_page(self, study_id: int, *, offset: int = 0, limit: int = 200, sort: tuple[str, str | None] = ("number", None),
                   descending: bool = False, state: TrialState | None = None) -> TrialPage:
        """Trials ``offset`` .. ``offset + limit`` of the study in ``sort`` order (see :func:`sort_key`),
        only those in ``state`` if given."""
        if not 0 <= offset <= 2**62 or not 1 <= limit <= MAX_PAGE:
            raise ConfigError(f"A page starts at 0 or later and holds 1 to {MAX_PAGE} rows (offset={offset}, limit={limit}).")
        t = schema.trials
        where = [t.c.study_id == study_id]
        if state is not None:
            where.append(t.c.state == state.value)
        with self._read() as conn:  # type: ignore[attr-defined]
            total = conn.execute(select(func.count()).select_from(t).where(t.c.study_id == study_id)).scalar_one()
            matched = total if state is None else conn.execute(select(func.count()).select_from(t).where(*where)).scalar_one()
            stmt = select(t).where(*where)
            records = None
            try:
                keys = _sort_keys(conn, sort, where)
                if keys is not None:
                    missing, *order = keys
                    page = stmt.order_by(missing, *(k.desc() if descending else k.asc() for k in order), t.c.number)
                    records = [trial_record(r) for r in conn.execute(page.offset(offset).limit(limit)).all()]
            except DBAPIError as exc:  # a value SQL cannot read (a NUL in jsonb; a NaN written since the check)
                if sort[0] not in ("param", "metric") or not _unreadable(exc):  # only a JSON column has a Python way
                    raise
                conn.rollback()
            if records is None:  # no JSON functions, or a JSON column SQL cannot read (NaN): Python sorts
                every = [trial_record(r) for r in conn.execute(stmt.order_by(t.c.number)).all()]
                records = _sorted(every, sort, descending)[offset:offset + limit]
            attrs = self._attrs_of(conn, study_id, [r.id for r in records]) if records else {}  # type: ignore[attr-defined]
        for record in records:  # the page's only: a Python sort decodes every row, not every row's attributes
            record.attrs.update(attrs.get(record.id, {}))
        return TrialPage(records, matched, total)


def _sort_keys(conn: Any, sort: tuple[str, str | None], where: list[Any]) -> list[Any] | None:
    """The ORDER BY of ``sort``: first what puts missing values last, then the keys; None where Python
    must sort (another back end; a JSON column that SQL cannot read, as a stored NaN is not JSON)."""
    t, a = schema.trials, schema.trial_attrs
    kind, name = sort
    dialect = conn.dialect.name
    plain = {"number": t.c.number, "state": t.c.state, "value": t.c.value, "duration": t.c.finished_at - t.c.started_at}
    if kind in plain:
        # text in code-point order on every back end (PostgreSQL's default collation follows the locale)
        key = plain[kind].collate("C") if kind == "state" and dialect == "postgresql" else plain[kind]
        return [plain[kind].is_(None), key]
    if kind == "device":
        device = select(a.c.value).where(a.c.trial_id == t.c.id, a.c.key == "device").scalar_subquery()
        return [device.is_(None), device.collate("C") if dialect == "postgresql" else device]
    column = t.c.params if kind == "param" else t.c["values"]
    if dialect == "sqlite":
        if conn.execute(select(func.count()).select_from(t).where(*where, func.json_valid(column) == 0)).scalar_one():
            return None  # NaN or Infinity (a diverged trial's metric), or a forged value: json_each would fail
        each = func.json_each(column).table_valued("key", "value").alias("each")
        value = select(each.c.value).where(each.c.key == name).scalar_subquery()
        return [value.is_(None), value]  # numbers (true 1, false 0) before text; JSON null is SQL NULL
    if dialect == "postgresql":
        from sqlalchemy import Numeric, case, cast, or_
        from sqlalchemy.dialects.postgresql import JSONB

        # text that is not JSON (NaN, Infinity, a forged value) would fail the cast: Python sorts then
        if conn.execute(select(func.count()).select_from(t).where(
                *where, or_(column.contains("NaN"), column.contains("Infinity")))).scalar_one():
            return None
        doc = cast(column, JSONB)[name]
        raw = cast(column, JSONB)[name].astext  # ->>: a string unquoted, a number or boolean as written
        kind_of = func.jsonb_typeof(doc)
        # a list or an object: jsonb writes it its own way (spaces, keys reordered): Python sorts its JSON text
        if conn.execute(select(func.count()).select_from(t).where(*where, kind_of.in_(["array", "object"]))).scalar_one():
            return None
        # SQLite's order: numbers (booleans as 1 and 0; exact, any size) before text, text by code point, null as missing
        number = case((kind_of == "number", cast(raw, Numeric)), (kind_of == "boolean", case((raw == "true", 1), else_=0)))
        text = case((kind_of == "string", raw.collate("C")))
        group = case((kind_of.in_(["number", "boolean"]), 0), else_=1)
        return [or_(doc.is_(None), kind_of == "null"), group, number, text]
    return None


def _unreadable(exc: DBAPIError) -> bool:
    """Whether the database failed on a stored value it cannot read as JSON or as a number (a NaN, a
    number past float8, a NUL character), not for want of the server: then Python sorts."""
    said = str(exc.orig if exc.orig is not None else exc).lower()
    return any(word in said for word in ("json", "out of range", "unicode", "invalid input syntax"))


def _sorted(records: list[TrialRecord], sort: tuple[str, str | None], descending: bool) -> list[TrialRecord]:
    """Python's version of the SQL order: numbers (booleans as 1 and 0) before text (JSON for a list),
    text by code point, missing values (None, NaN) last in either direction, ties by trial number."""
    kind, name = sort
    source = {"param": lambda r: r.params, "metric": lambda r: r.values}[kind]
    present: list[tuple[int, Any, TrialRecord]] = []
    missing: list[TrialRecord] = []
    for r in records:
        v = source(r).get(name or "")
        if v is None or (isinstance(v, float) and math.isnan(v)):
            missing.append(r)
        elif isinstance(v, (int, float)):
            present.append((0, v, r))
        else:
            present.append((1, v if isinstance(v, str) else json.dumps(v, separators=(",", ":")), r))  # as SQLite has it
    present.sort(key=lambda x: x[2].number)
    present.sort(key=lambda x: (x[0], x[1]), reverse=descending)
    return [x[2] for x in present] + sorted(missing, key=lambda r: r.number)
