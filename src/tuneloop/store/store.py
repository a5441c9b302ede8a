"""The one API through which everything is written and read: SQLite file or any SQLAlchemy URL.

    store = Store("sqlite:///tuneloop.db")      # the default; a bare path works too
    store = Store("postgresql+psycopg://user@host/db")

SQLite runs in WAL mode (readers such as the dashboard never block the driver) with
``synchronous=NORMAL``: a power cut may lose the last commits, never corrupt the file.
"""

from __future__ import annotations

import json
import math
import os
import time
import weakref
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, create_engine, event, func, inspect, insert, select, text, update
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from tuneloop.errors import NotFound, SchemaVersionError, StorageError, TuneloopError
from tuneloop.space import Space, space_from_json
from tuneloop.store import schema
from tuneloop.store._logs import ChecksMixin, LogsMixin
from tuneloop.store._retry import Unavailable, retrying, transient
from tuneloop.store.records import FINISHED_STATES, StudyRecord, StudySummary, TrialRecord

DEFAULT_URL = "tuneloop.db"  # a path: resolved against the working directory

Point = tuple[int, int, int, str, float]  # trial_id, attempt, step, name, value


def resolve_url(storage: str | os.PathLike[str] | None) -> str:
    """``None`` -> $TUNELOOP_STORAGE or ./tuneloop.db; a bare path -> an SQLite URL."""
    if storage is None:
        storage = os.environ.get("TUNELOOP_STORAGE") or DEFAULT_URL
    storage = os.fspath(storage)
    if "://" not in storage:
        storage = f"sqlite:///{Path(storage).expanduser().resolve()}"
    return storage


def _check_sqlite_path(url: str, database: str | None) -> None:
    """Fail before touching anything when an SQLite file cannot be created or written."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database).expanduser()
    folder = path.resolve().parent if path.parent != Path("") else Path.cwd()
    how = "pass --storage with a writable path, e.g. --storage sqlite:///./tuneloop.db"
    if path.exists() and (path.is_dir() or not os.access(path, os.R_OK | os.W_OK)):
        raise StorageError(f"Cannot open the store {url}: {path} is not a writable file; {how}.")
    if not path.exists():
        if not folder.is_dir():
            raise StorageError(f"Cannot create the store {url}: folder {folder} does not exist; {how}.")
        if not os.access(folder, os.W_OK):
            raise StorageError(f"Cannot create the store {url}: folder {folder} is not writable; {how}.")


def _loads(text: str | None, what: str, default: Any = None) -> Any:
    if text is None:
        return default
    try:
        return json.loads(text)
    except (TypeError, ValueError) as exc:
        raise StorageError(
            f"Corrupt row: {what} is not valid JSON ({exc}); repair or delete that row in the database."
        ) from None


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, allow_nan=True, separators=(",", ":"))


class Store(LogsMixin, ChecksMixin):
    """Studies, trials, metric points and everything else trials log, in one SQL database."""

    def __init__(self, url: str | os.PathLike[str] | None = None, *, retry_seconds: float = 60.0) -> None:
        self.url = resolve_url(url)
        self.retry_seconds = retry_seconds  # how long a busy or unreachable database is waited for
        try:
            parsed = make_url(self.url)
        except ArgumentError as exc:
            raise StorageError(f"{self.url!r} is not a database URL ({exc}); e.g. sqlite:///tuneloop.db.") from None
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite:
            _check_sqlite_path(self.url, parsed.database)
        try:
            kwargs: dict[str, Any] = {"connect_args": {"timeout": 30}} if self.is_sqlite else {"pool_pre_ping": True}
            self.engine: Engine = create_engine(self.url, **kwargs)
        except (NoSuchModuleError, ImportError) as exc:
            hint = " pip install 'tuneloop[postgres]'" if parsed.get_backend_name() == "postgresql" else ""
            raise StorageError(f"Cannot open {self.url}: its database driver is missing ({exc}).{hint}") from None
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        weakref.finalize(self, self.engine.dispose)  # a store let go closes its pooled connections
        self._open()
        # the two statements every trial runs, built once (building them costs more than running them)
        t = schema.trials
        self._insert_trial = insert(t)
        self._finish_trial = update(t).where(t.c.id == bindparam("trial_id")).values(
            state=bindparam("state"), value=bindparam("value"), values=bindparam("values"),
            error=bindparam("error"), finished_at=bindparam("finished_at"))

    def _open(self) -> None:
        """Check the schema version, then create missing tables (never touching a newer schema)."""
        try:
            with self.engine.begin() as conn:  # one transaction: DDL is transactional on both back ends
                if not self.is_sqlite:  # drivers opening a fresh shared database at once take turns
                    conn.execute(text("SELECT pg_advisory_xact_lock(7262017)"))
                if inspect(conn).has_table(schema.meta.name):
                    row = conn.execute(select(schema.meta.c.value).where(schema.meta.c.key == "schema_version")).first()
                    version = int(row[0]) if row else 0
                    if version > schema.SCHEMA_VERSION:
                        raise SchemaVersionError(
                            f"{self.url} was written by a newer tuneloop (schema {version}; this version reads up "
                            f"to {schema.SCHEMA_VERSION}); upgrade: pip install -U tuneloop."
                        )
                # every migration so far only adds tables, which create_all does; then record the version
                schema.metadata.create_all(conn)
                row = conn.execute(select(schema.meta.c.value).where(schema.meta.c.key == "schema_version")).first()
                if row is None:
                    conn.execute(insert(schema.meta).values(key="schema_version", value=str(schema.SCHEMA_VERSION)))
                elif int(row[0]) < schema.SCHEMA_VERSION:
                    conn.execute(update(schema.meta).where(schema.meta.c.key == "schema_version")
                                 .values(value=str(schema.SCHEMA_VERSION)))
        except SchemaVersionError:
            self.engine.dispose()
            raise
        except SQLAlchemyError as exc:
            self.engine.dispose()
            raise StorageError(f"Cannot open the store {self.url}: {_cause(exc)}.") from None

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- studies --------------------------------------------------------------------------
    @retrying
    def create_study(self, name: str, metric: str, mode: str, space: Space, config: dict[str, Any]) -> StudyRecord:
        now = time.time()
        with self._write() as conn:
            conn.execute(insert(schema.studies).values(
                name=name, metric=metric, mode=mode, space=_dumps(space.to_json()), config=_dumps(config),
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
            id=row.id, name=row.name, metric=row.metric, mode=row.mode,
            space=space_from_json(_loads(row.space, f"the space of {what}")),
            config=_loads(row.config, f"the config of {what}", {}),
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
                         .values(config=_dumps(config), updated_at=time.time()))

    def study_configs(self) -> dict[str, dict[str, Any]]:
        """Every study's config by name, in one query (rounds and probes are found through them)."""
        with self._read() as conn:
            rows = conn.execute(select(schema.studies.c.name, schema.studies.c.config)).all()
        return {r.name: _loads(r.config, f"the config of study {r.name!r}", {}) for r in rows}

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
                                .where(t.c.state == "completed").group_by(t.c.study_id)).all()
        by_study: dict[int, dict[str, int]] = {}
        for study_id, state, n in counts:
            by_study.setdefault(study_id, {})[state] = n
        best_by = {b[0]: (b[1], b[2]) for b in best}
        out = []
        for r in rows:
            lo_hi = best_by.get(r.id)
            out.append(StudySummary(
                name=r.name, metric=r.metric, mode=r.mode, counts=by_study.get(r.id, {}),
                best_value=None if lo_hi is None else (lo_hi[1] if r.mode == "max" else lo_hi[0]),
                created_at=r.created_at, last_activity=max(r.updated_at, activity.get(r.id) or 0.0),
            ))
        return out

    # -- trials ---------------------------------------------------------------------------
    @retrying
    def create_trial(self, study_id: int, number: int, params: dict[str, Any], seed: int, state: str = "running") -> int:
        now = time.time()
        with self._write() as conn:
            result = conn.execute(self._insert_trial, {
                "study_id": study_id, "number": number, "state": state, "params": _dumps(params), "seed": seed,
                "attempt": 0, "created_at": now, "started_at": now if state == "running" else None,
            })
            return int(result.inserted_primary_key[0])

    @retrying
    def restart_trial(self, trial_id: int) -> int:
        """Put an interrupted trial back to running as its next attempt; returns the attempt."""
        with self._write() as conn:
            conn.execute(update(schema.trials).where(schema.trials.c.id == trial_id).values(
                state="running", attempt=schema.trials.c.attempt + 1, started_at=time.time(),
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
                "trial_id": trial_id, "state": state, "value": _finite_or_none(value), "values": _dumps(values),
                "error": error, "finished_at": time.time(),
            })

    @retrying
    def mark_interrupted(self, study_id: int, trial_ids: Iterable[int] | None = None) -> int:
        """Mark running/queued trials interrupted (all of the study's, or the given ones)."""
        t = schema.trials
        stmt = update(t).where(t.c.study_id == study_id, t.c.state.in_(("running", "queued")))
        if trial_ids is not None:
            stmt = stmt.where(t.c.id.in_(list(trial_ids)))
        with self._write() as conn:
            return conn.execute(stmt.values(state="interrupted", finished_at=time.time())).rowcount

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
        if numbers is not None:
            stmt = stmt.where(t.c.number.in_(list(numbers)))
        with self._read() as conn:
            rows = conn.execute(stmt).all()
        return [_trial_record(r) for r in rows]

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
    def next_number(self, study_id: int) -> int:
        with self._read() as conn:
            n = conn.execute(select(func.max(schema.trials.c.number)).where(schema.trials.c.study_id == study_id)).scalar()
        return 0 if n is None else int(n) + 1

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
        return _Guard(self, self.engine.begin, "write to")

    def _read(self) -> Any:
        return _Guard(self, self.engine.connect, "read from")


class _Guard:
    """Turn driver errors into StorageError naming the store and the cause."""

    def __init__(self, store: Store, open_: Any, verb: str) -> None:
        self.store, self.open, self.verb = store, open_, verb

    def __enter__(self) -> Any:
        try:
            self.ctx = self.open()  # connecting may fail too: inside the guard
            return self.ctx.__enter__()
        except SQLAlchemyError as exc:
            raise self._error(exc) from None

    def __exit__(self, *exc_info: Any) -> bool:
        try:
            self.ctx.__exit__(*exc_info)
        except SQLAlchemyError as exc:
            raise self._error(exc) from None
        if isinstance(exc_info[1], SQLAlchemyError):
            raise self._error(exc_info[1]) from None
        return False

    def _error(self, exc: SQLAlchemyError) -> StorageError:
        kind = Unavailable if transient(exc) else StorageError
        return kind(f"Cannot {self.verb} the store {self.store.url}: {_cause(exc)}.")


def _cause(exc: BaseException) -> str:
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return str(exc.orig).splitlines()[0]
    return str(exc).splitlines()[0]


def point_rows(points: Sequence[Point]) -> list[dict[str, Any]]:
    return [{"trial_id": t, "attempt": a, "step": s, "name": n, "value": _finite_or_none(v)} for t, a, s, n, v in points]


def _trial_record(row: Any) -> TrialRecord:
    what = f"trial {row.number} (id {row.id})"
    return TrialRecord(
        id=row.id, study_id=row.study_id, number=row.number, state=row.state,
        params=_loads(row.params, f"the params of {what}", {}), seed=row.seed, attempt=row.attempt,
        value=row.value, values=_loads(row.values, f"the values of {what}", {}) or {}, error=row.error,
        created_at=row.created_at, started_at=row.started_at, finished_at=row.finished_at,
    )


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
