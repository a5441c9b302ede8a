"""The one API through which everything is written and read: SQLite file or any SQLAlchemy URL.

    store = Store("sqlite:///tuneloop.db")      # the default; a bare path works too
    store = Store("postgresql+psycopg://user@host/db")
    store = Store("colleague.db", read_only=True)  # reading commands: never changes the file

A database may come from someone else, so it is never trusted: one that holds another program's
tables is refused (never given tuneloop's), and every stored row is checked as it is decoded.

SQLite runs in WAL mode (readers such as the dashboard never block the driver) with
``synchronous=NORMAL``: a power cut may lose the last commits, never corrupt the file.

``Store`` is assembled by subject: studies and trials here; what trials log in ``_logs``
(``LogsMixin``, ``ChecksMixin``); leases and trial numbers in ``_leases`` (``LeasesMixin``);
URLs, engines and the error guard in ``_open``; a page of a study's trials, sorted and filtered in SQL, in
``_pages`` (``PagesMixin``); decoding stored rows in ``_rows``; the job queue
``tuneloop queue`` runs in ``_jobs`` (``JobsMixin``).
"""

from __future__ import annotations

import math
import os
import time
import weakref
from collections.abc import Iterable, Sequence
from typing import Any, Self

from sqlalchemy import bindparam, event, func, insert, inspect, select, text, update
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from tuneloop.direction import Direction
from tuneloop.errors import NotFound, NotTuneloopDatabase, SchemaVersionError, StorageError, TuneloopError
from tuneloop.space import Space, space_from_json
from tuneloop.store import schema
from tuneloop.store._import import ImportMixin
from tuneloop.store._jobs import JobsMixin
from tuneloop.store._leases import ACTIVE_STATES, Lease, LeasesMixin
from tuneloop.store._logs import ChecksMixin, LogsMixin
from tuneloop.store._open import (
    DEFAULT_URL,
    Guard,
    cause,
    check_sqlite_path,
    make_engine,
    not_ours,
    parse_url,
    read_only_sqlite,
    resolve_url,
    schema_version,
    sqlite_pragmas,
)
from tuneloop.store._pages import PagesMixin
from tuneloop.store._queue import QueueMixin
from tuneloop.store._retry import retrying
from tuneloop.store._rows import (
    INT64,
    Point,
    dumps,
    finite_or_none,
    loads,
    loads_object,
    point_rows,
    trial_record,
    word,
)
from tuneloop.store.records import FINISHED_STATES, StudyRecord, StudySummary, TrialRecord, TrialState

__all__ = ["DEFAULT_URL", "Lease", "Point", "Store", "point_rows", "resolve_url"]  # what other modules import from here


class Store(LogsMixin, ChecksMixin, LeasesMixin, PagesMixin, ImportMixin, QueueMixin, JobsMixin):
    """Studies, trials, metric points and everything else trials log, in one SQL database."""

    def __init__(self, url: str | os.PathLike[str] | None = None, *, retry_seconds: float = 60.0,
                 read_only: bool = False) -> None:
        """``read_only``: for commands that only read. SQLite opens with ``mode=ro`` (a missing file is
        an error, never created; no table, pragma or WAL switch is written); PostgreSQL runs no DDL and
        its sessions default to read-only transactions. Either way a database that is not tuneloop's is
        refused with :class:`NotTuneloopDatabase`, as it is when opened for writing."""
        self.url = resolve_url(url)
        self.read_only = read_only
        self.retry_seconds = retry_seconds  # how long a busy or unreachable database is waited for
        parsed = parse_url(self.url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite and read_only:
            parsed = read_only_sqlite(parsed)
        elif self.is_sqlite:
            check_sqlite_path(self.url, parsed.database)
        self.engine: Engine = make_engine(self.url, parsed, read_only)
        weakref.finalize(self, self.engine.dispose)  # a store let go closes its pooled connections
        self._open()
        # create_trial's and finish_trial's statements, built once (building costs more than running them);
        # the driver's own per-trial statements (claim, finish under a lease) are _leases' module constants
        t = schema.trials
        self._insert_trial = insert(t)
        self._finish_trial = update(t).where(t.c.id == bindparam("trial_id")).values(
            state=bindparam("state"), value=bindparam("value"), values=bindparam("values"),
            error=bindparam("error"), finished_at=bindparam("finished_at"))

    def _open(self) -> None:
        """Refuse another program's database and a newer schema; then, unless read-only, create the
        missing tables and record the schema version."""
        try:
            with self.engine.connect() as conn:  # a look first: refusing must leave the database as it was
                self._check_schema(conn)
            if self.read_only:
                return
            if self.is_sqlite:  # WAL and the other pragmas only once the file is known to be ours (or new)
                self.engine.dispose()
                event.listen(self.engine, "connect", sqlite_pragmas)
            for turn in range(5):
                try:
                    self._create_tables()
                    break
                except (OperationalError, IntegrityError) as exc:
                    # SQLite has no advisory lock, and its DDL is not in the transaction: two processes
                    # creating one new file at once meet a table or version row the other just wrote.
                    # Another look sees them (create_all skips what exists).
                    if not self.is_sqlite or turn == 4 or not ("already exists" in str(exc) or
                                                               isinstance(exc, IntegrityError)):
                        raise
                    time.sleep(0.05 * (turn + 1))
        except TuneloopError:
            self.engine.dispose()
            raise
        except SQLAlchemyError as exc:
            self.engine.dispose()
            raise StorageError(f"Cannot open the store {self.url}: {cause(exc)}.") from None

    def _create_tables(self) -> None:
        """Create the missing tables and record the schema version, in one transaction."""
        with self.engine.begin() as conn:  # one transaction: DDL is transactional on PostgreSQL
            if not self.is_sqlite:  # drivers opening a fresh shared database at once take turns
                conn.execute(text("SELECT pg_advisory_xact_lock(7262017)"))
            version = self._check_schema(conn)  # again, under the lock: another driver may have created it
            # every migration so far only adds tables, which create_all does; then record the version
            schema.metadata.create_all(conn)
            if version is None:
                conn.execute(insert(schema.meta).values(key="schema_version", value=str(schema.SCHEMA_VERSION)))
            elif version < schema.SCHEMA_VERSION:
                conn.execute(update(schema.meta).where(schema.meta.c.key == "schema_version")
                             .values(value=str(schema.SCHEMA_VERSION)))

    def _check_schema(self, conn: Any) -> int | None:
        """The stored schema version (None for a new, empty database), after refusing a database that
        holds another program's tables or was written by a newer tuneloop."""
        names = sorted(inspect(conn).get_table_names())
        if schema.meta.name not in names:
            if names or self.read_only:  # never add tables to another program's database
                raise NotTuneloopDatabase(not_ours(self._where(), names))
            return None  # a new, empty database
        row = conn.execute(select(schema.meta.c.value).where(schema.meta.c.key == "schema_version")).first()
        if row is None:
            if self.read_only:
                raise NotTuneloopDatabase(not_ours(self._where(), names))
            return None  # our table without its version row: written now
        version = schema_version(row[0], self._where())
        if version > schema.SCHEMA_VERSION:
            raise SchemaVersionError(
                f"{self.url} was written by a newer tuneloop (schema {version}; this version reads up "
                f"to {schema.SCHEMA_VERSION}); upgrade: pip install -U tuneloop."
            )
        return version

    def _where(self) -> str:
        """The database as a person names it: the SQLite file, or the URL without its password."""
        parsed = make_url(self.url)
        if self.is_sqlite and parsed.database:
            return parsed.database
        return parsed.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- studies --------------------------------------------------------------------------
    @retrying
    def create_study(self, name: str, metric: str, mode: str, space: Space, config: dict[str, Any]) -> StudyRecord:
        now = time.time()
        with self._write() as conn:
            conn.execute(insert(schema.studies).values(
                name=name, metric=metric, mode=Direction.of(mode).value, space=dumps(space.to_json()), config=dumps(config),
                created_at=now, updated_at=now,
            ))
        study = self.get_study(name)
        assert study is not None
        return study

    @retrying
    def get_study(self, name: str) -> StudyRecord | None:
        with self._read() as conn:
            row = conn.execute(select(schema.studies).where(schema.studies.c.name == name)).first()
        if row is None:
            return None
        what = f"study {name!r}"
        return StudyRecord(
            id=row.id, name=row.name, metric=row.metric, mode=word(Direction, row.mode, f"the mode of {what}"),
            space=space_from_json(loads(row.space, f"the space of {what}"), f"the space of {what}"),
            config=loads_object(row.config, f"the config of {what}"),
            created_at=row.created_at, updated_at=row.updated_at,
        )

    def require_study(self, name: str) -> StudyRecord:
        """The stored study ``name``, or a TuneloopError listing the studies there are."""
        record = self.get_study(name)
        if record is None:
            known = ", ".join(s.name for s in self.studies()) or "none"
            raise NotFound(f"No study named {name!r} in {self.url}; studies there: {known}.")
        return record

    @retrying
    def update_study_config(self, study_id: int, config: dict[str, Any]) -> None:
        with self._write() as conn:
            conn.execute(update(schema.studies).where(schema.studies.c.id == study_id)
                         .values(config=dumps(config), updated_at=time.time()))

    def study_configs(self) -> dict[str, dict[str, Any]]:
        """Every study's config by name, in one query (rounds and probes are found through them)."""
        with self._read() as conn:
            rows = conn.execute(select(schema.studies.c.name, schema.studies.c.config)).all()
        return {r.name: loads_object(r.config, f"the config of study {r.name!r}") for r in rows}

    def studies(self) -> list[StudySummary]:
        """Every study with its counts by state, best value and last activity."""
        s, t = schema.studies, schema.trials
        with self._read() as conn:
            rows = conn.execute(select(s.c.id, s.c.name, s.c.metric, s.c.mode, s.c.created_at, s.c.updated_at)
                                .order_by(s.c.created_at)).all()
            counts = conn.execute(select(t.c.study_id, t.c.state, func.count()).group_by(t.c.study_id, t.c.state)).all()
            activity = dict(conn.execute(select(t.c.study_id, func.max(func.coalesce(t.c.finished_at, t.c.started_at)))
                                         .group_by(t.c.study_id)).all())
            best = conn.execute(select(t.c.study_id, func.min(t.c.value), func.max(t.c.value))
                                .where(t.c.state == TrialState.COMPLETED.value).group_by(t.c.study_id)).all()
        by_study: dict[int, dict[str, int]] = {}
        for study_id, state, n in counts:
            by_study.setdefault(study_id, {})[state] = n
        best_by = {b[0]: (b[1], b[2]) for b in best}
        out = []
        for r in rows:
            lo_hi = best_by.get(r.id)
            mode = word(Direction, r.mode, f"the mode of study {r.name!r}")
            out.append(StudySummary(
                name=r.name, metric=r.metric, mode=mode, counts=by_study.get(r.id, {}),
                best_value=None if lo_hi is None else (lo_hi[1] if mode is Direction.MAX else lo_hi[0]),
                created_at=r.created_at, last_activity=max(r.updated_at, activity.get(r.id) or 0.0),
            ))
        return out

    # -- trials ---------------------------------------------------------------------------
    @retrying
    def create_trial(self, study_id: int, number: int, params: dict[str, Any], seed: int,
                     state: str = TrialState.RUNNING.value) -> int:
        now = time.time()
        with self._write() as conn:
            result = conn.execute(self._insert_trial, {
                "study_id": study_id, "number": number, "state": state, "params": dumps(params), "seed": seed,
                "attempt": 0, "created_at": now, "started_at": now if state == TrialState.RUNNING else None,
            })
            return int(result.inserted_primary_key[0])

    @retrying
    def restart_trial(self, trial_id: int) -> int:
        """Put an interrupted trial back to running as its next attempt; returns the attempt."""
        with self._write() as conn:
            conn.execute(update(schema.trials).where(schema.trials.c.id == trial_id).values(
                state=TrialState.RUNNING.value, attempt=schema.trials.c.attempt + 1, started_at=time.time(),
                finished_at=None, value=None, values=None, error=None,
            ))
            return int(conn.execute(select(schema.trials.c.attempt).where(schema.trials.c.id == trial_id)).scalar_one())

    @retrying
    def finish_trial(self, trial_id: int, state: str, value: float | None, values: dict[str, float],
                     error: str | None = None, batch: dict[str, Sequence[dict[str, Any]]] | None = None) -> None:
        """Record a trial's end and everything still unwritten (``batch``: rows by table, as
        ``write_batch`` takes them) in one transaction."""
        with self._write() as conn:
            if batch:
                self.write_batch(batch, conn)
            conn.execute(self._finish_trial, {
                "trial_id": trial_id, "state": state, "value": finite_or_none(value), "values": dumps(values),
                "error": error, "finished_at": time.time(),
            })

    @retrying
    def mark_interrupted(self, study_id: int, trial_ids: Iterable[int] | None = None) -> int:
        """Mark running/queued trials interrupted (all of the study's, or the given ones)."""
        t = schema.trials
        stmt = update(t).where(t.c.study_id == study_id, t.c.state.in_(ACTIVE_STATES))
        if trial_ids is not None:
            stmt = stmt.where(t.c.id.in_(list(trial_ids)))
        with self._write() as conn:
            return conn.execute(stmt.values(state=TrialState.INTERRUPTED.value, finished_at=time.time())).rowcount

    def add_points(self, points: Sequence[Point]) -> None:
        """Metric points (trial_id, attempt, step, name, value), in one transaction."""
        self.write_batch({"metrics": point_rows(points)})

    @retrying
    def trials(self, study_id: int, states: Iterable[str] | None = None,
               numbers: Iterable[int] | None = None) -> list[TrialRecord]:
        t = schema.trials
        stmt = select(t).where(t.c.study_id == study_id).order_by(t.c.number)
        if states is not None:
            stmt = stmt.where(t.c.state.in_(list(states)))
        if numbers is not None:  # a number past 64 bits names no trial (the driver could not even bind it)
            stmt = stmt.where(t.c.number.in_([n for n in numbers if INT64[0] <= n <= INT64[1]]))
        with self._read() as conn:
            rows = conn.execute(stmt).all()
            attrs = self._attrs_of(conn, study_id, [r.id for r in rows]) if rows else {}
        return [trial_record(r, attrs.get(r.id)) for r in rows]

    @staticmethod
    def _attrs_of(conn: Any, study_id: int, ids: list[int]) -> dict[int, dict[str, Any]]:
        """The attributes of the study's trials ``ids``: by id for a few (one trial, the running ones),
        in one query over the study for many (then filtered)."""
        a, t = schema.trial_attrs, schema.trials
        stmt = select(a.c.trial_id, a.c.key, a.c.value)
        if len(ids) <= 500:
            stmt = stmt.where(a.c.trial_id.in_(ids))
        else:
            stmt = stmt.join(t, t.c.id == a.c.trial_id).where(t.c.study_id == study_id)
        wanted, out = set(ids), dict[int, dict[str, Any]]()
        for trial_id, key, value in conn.execute(stmt):
            if trial_id in wanted:
                out.setdefault(trial_id, {})[key] = loads(value, f"the attribute {key!r:.60} of trial id {trial_id}")
        return out

    @retrying
    def trial(self, study_id: int, number: int) -> TrialRecord:
        """One trial by its number; a TuneloopError when the study has none."""
        found = self.trials(study_id, numbers=[number])
        if not found:
            raise NotFound(f"This study has no trial {number}; tuneloop trials STUDY lists them.")
        return found[0]

    @retrying
    def count_finished(self, study_id: int) -> int:
        t = schema.trials
        with self._read() as conn:
            return int(conn.execute(select(func.count()).where(t.c.study_id == study_id,
                                                                t.c.state.in_(FINISHED_STATES))).scalar_one())

    @retrying
    def completed_mark(self, study_id: int) -> tuple[int, int | None, float | None]:
        """How many trials completed, the largest id among them and the latest finish: what changes
        when another trial completes (a cache key read in one cheap query)."""
        t = schema.trials
        with self._read() as conn:
            count, top, last = conn.execute(select(func.count(), func.max(t.c.id), func.max(t.c.finished_at)).where(
                t.c.study_id == study_id, t.c.state == TrialState.COMPLETED.value)).one()
        try:
            latest = None if last is None else float(last)
        except (TypeError, ValueError):  # a hostile finished_at: the count and id still tell
            latest = None
        return int(count), None if top is None else int(top), latest

    @retrying
    def trials_mark(self, study_id: int) -> tuple[Any, ...]:
        """What changes when any of the study's trial rows does (a trial added, started again, finished, a
        state or attribute set): per state the count, the largest id, the latest start and finish and the
        attempts, and the number of attributes; read in two cheap queries, a cache key for whole views."""
        t, a = schema.trials, schema.trial_attrs
        with self._read() as conn:
            per_state = conn.execute(
                select(t.c.state, func.count(), func.max(t.c.id), func.max(t.c.started_at), func.max(t.c.finished_at),
                       func.sum(t.c.attempt)).where(t.c.study_id == study_id).group_by(t.c.state).order_by(t.c.state)).all()
            attrs = conn.execute(select(func.count()).select_from(a.join(t, t.c.id == a.c.trial_id))
                                 .where(t.c.study_id == study_id)).scalar_one()
        return (*(tuple(str(v) for v in row) for row in per_state), int(attrs))

    @retrying
    def series(self, trial_ids: Sequence[int], names: Sequence[str] | None = None) -> dict[int, dict[str, list[tuple[int, float]]]]:
        """Metric curves of the trials' current attempts: {trial_id: {name: [(step, value), ...]}}."""
        t, m = schema.trials, schema.metrics
        out: dict[int, dict[str, list[tuple[int, float]]]] = {i: {} for i in trial_ids}
        ids = list(trial_ids)
        for start in range(0, len(ids), 500):
            stmt = (select(m.c.trial_id, m.c.name, m.c.step, m.c.value)
                    .join(t, (t.c.id == m.c.trial_id) & (t.c.attempt == m.c.attempt))
                    .where(m.c.trial_id.in_(ids[start:start + 500])).order_by(m.c.trial_id, m.c.id))
            if names is not None:
                stmt = stmt.where(m.c.name.in_(list(names)))
            with self._read() as conn:
                for trial_id, name, step, value in conn.execute(stmt):
                    out[trial_id].setdefault(name, []).append((step, math.nan if value is None else value))
        return out

    # -- plumbing -------------------------------------------------------------------------
    def _write(self) -> Any:
        if self.read_only:  # a reading command never writes; say so instead of the driver's error
            raise StorageError(f"The store {self.url} was opened read-only (for reading); open it with "
                               f"Store(url) to write.")
        return Guard(self.url, self.engine.begin, "write to")

    def _read(self) -> Any:
        return Guard(self.url, self.engine.connect, "read from")
