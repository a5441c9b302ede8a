"""The one API through which everything is written and read: SQLite file or any SQLAlchemy URL.

    store = Store("sqlite:///tuneloop.db")      # the default; a bare path works too
    store = Store("postgresql+psycopg://user@host/db")
    store = Store("colleague.db", read_only=True)  # reading commands: never changes the file

A database may come from someone else, so it is never trusted: one that holds another program's
tables is refused (never given tuneloop's), and every stored row is checked as it is decoded.

SQLite runs in WAL mode (readers such as the dashboard never block the driver) with
``synchronous=NORMAL``: a power cut may lose the last commits, never corrupt the file.
"""

from __future__ import annotations

import functools
import importlib
import json
import math
import os
import socket
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from sqlalchemy import bindparam, create_engine, delete, event, func, insert, inspect, select, text, update
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, NoSuchModuleError, SQLAlchemyError

from tuneloop.direction import Direction
from tuneloop.errors import ConfigError, NotFound, NotTuneloopDatabase, SchemaVersionError, StorageError, TuneloopError
from tuneloop.space import Space, space_from_json
from tuneloop.store import schema
from tuneloop.store._logs import ChecksMixin, LogsMixin
from tuneloop.store._retry import Unavailable, retrying, transient
from tuneloop.store.records import FINISHED_STATES, StudyRecord, StudySummary, TrialRecord, TrialState

DEFAULT_URL = "tuneloop.db"  # a path: resolved against the working directory

Point = tuple[int, int, int, str, float]  # trial_id, attempt, step, name, value
INT64 = (-(2**63), 2**63 - 1)  # what an INTEGER column holds on both back ends


def resolve_url(storage: str | os.PathLike[str] | None) -> str:
    """``None`` -> $TUNELOOP_STORAGE or ./tuneloop.db; a bare path -> an SQLite URL."""
    if storage is None:
        storage = os.environ.get("TUNELOOP_STORAGE") or DEFAULT_URL
    storage = os.fspath(storage)
    if "://" not in storage:
        # a URL's path is percent-decoded: a % ? or # in a file name is written encoded, so it stays in it
        path = str(Path(storage).expanduser().resolve())
        storage = "sqlite:///" + path.replace("%", "%25").replace("?", "%3F").replace("#", "%23")
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


def _parse_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise StorageError(f"{url!r} is not a database URL ({exc}); pass --storage with an SQLite path or a URL "
                           f"such as sqlite:///tuneloop.db.") from None
    if parsed.get_backend_name() == "sqlite" and (parsed.host or parsed.username or parsed.password or parsed.port):
        raise StorageError(f"{url!r} is not a database URL (an SQLite URL names no host: three slashes, then the "
                           f"path); pass --storage with an SQLite path or a URL such as sqlite:///tuneloop.db.")
    return parsed


def _read_only_sqlite(parsed: URL) -> URL:
    """The URL that opens the SQLite file with ``mode=ro``: nothing written, nothing created."""
    database = parsed.database or ":memory:"
    if database.startswith("file:"):  # already an SQLite URI: only add read-only to it
        return parsed.set(query={**parsed.query, "mode": "ro", "uri": "true"})
    path = Path(database).expanduser()
    if database == ":memory:" or not path.exists():
        raise StorageError(f"No tuneloop database at {database}; reading never creates one: start one with tuneloop "
                           f"run FILE or tuneloop demo, or pass --storage with an existing database.")
    if not path.is_file():
        raise StorageError(f"{path} is not a database file but a folder; pass --storage with a tuneloop database.")
    # an SQLite URI: %, ? and # in the path must be percent-encoded, or they would end the file name
    return parsed.set(database=f"file:{quote(str(path.resolve()), safe='/')}", query={"mode": "ro", "uri": "true"})


def _engine(url: str, parsed: URL, read_only: bool) -> Engine:
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "sqlite":
        kwargs = {"connect_args": {"timeout": 30}}
    elif read_only and parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("psycopg", "psycopg2"):
        kwargs["connect_args"] = {"options": "-c default_transaction_read_only=on"}  # the server refuses writes
    try:
        return create_engine(parsed, **kwargs)
    except (NoSuchModuleError, ImportError) as exc:
        hint = " pip install 'tuneloop[postgres]'" if parsed.get_backend_name() == "postgresql" else ""
        raise StorageError(f"Cannot open {url}: its database driver is missing ({exc}).{hint}") from None
    except ArgumentError as exc:
        raise StorageError(f"{url!r} is not a database URL ({_cause(exc)}); pass --storage with an SQLite path or "
                           f"a URL such as sqlite:///tuneloop.db.") from None


def _not_ours(where: str, names: Sequence[str]) -> str:
    shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    has = f"it has tables {shown}" if names else "it has no tables"
    return f"{where} is not a tuneloop database ({has}); pass --storage with a tuneloop database."


def _schema_version(raw: Any, where: str) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise StorageError(f"{where} has a corrupt schema version {raw!r:.40} in table tuneloop_meta (a whole number "
                           f"such as {schema.SCHEMA_VERSION} is expected); repair that row.") from None


def _loads(text: str | None, what: str, default: Any = None) -> Any:
    if text is None:
        return default
    try:
        return json.loads(text)
    except (TypeError, ValueError, RecursionError) as exc:
        raise StorageError(
            f"Corrupt row: {what} is not valid JSON ({exc}); repair or delete that row in the database."
        ) from None


_Word = TypeVar("_Word", TrialState, Direction)


def _word(kind: type[_Word], stored: Any, what: str) -> _Word:
    """A stored state or mode as its type; a corrupt-row StorageError when it is none of its words."""
    try:
        return kind(stored)
    except ValueError:
        words = ", ".join(repr(w.value) for w in kind)
        raise StorageError(f"Corrupt row: {what} is {stored!r:.40}, not one of {words}; "
                           f"repair or delete that row in the database.") from None


def _loads_object(text: str | None, what: str) -> dict[str, Any]:
    """A stored JSON object (params, values, config); NULL reads as an empty one."""
    value = _loads(text, what, {})
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise StorageError(f"Corrupt row: {what} is not a JSON object but a {type(value).__name__}; "
                           f"repair or delete that row in the database.")
    return value


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, allow_nan=True, separators=(",", ":"))


class Store(LogsMixin, ChecksMixin):
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
        parsed = _parse_url(self.url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite and read_only:
            parsed = _read_only_sqlite(parsed)
        elif self.is_sqlite:
            _check_sqlite_path(self.url, parsed.database)
        self.engine: Engine = _engine(self.url, parsed, read_only)
        weakref.finalize(self, self.engine.dispose)  # a store let go closes its pooled connections
        self._open()
        # the two statements every trial runs, built once (building them costs more than running them)
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
                event.listen(self.engine, "connect", _sqlite_pragmas)
            with self.engine.begin() as conn:  # one transaction: DDL is transactional on both back ends
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
        except TuneloopError:
            self.engine.dispose()
            raise
        except SQLAlchemyError as exc:
            self.engine.dispose()
            raise StorageError(f"Cannot open the store {self.url}: {_cause(exc)}.") from None

    def _check_schema(self, conn: Any) -> int | None:
        """The stored schema version (None for a new, empty database), after refusing a database that
        holds another program's tables or was written by a newer tuneloop."""
        names = sorted(inspect(conn).get_table_names())
        if schema.meta.name not in names:
            if names or self.read_only:  # never add tables to another program's database
                raise NotTuneloopDatabase(_not_ours(self._where(), names))
            return None  # a new, empty database
        row = conn.execute(select(schema.meta.c.value).where(schema.meta.c.key == "schema_version")).first()
        if row is None:
            if self.read_only:
                raise NotTuneloopDatabase(_not_ours(self._where(), names))
            return None  # our table without its version row: written now
        version = _schema_version(row[0], self._where())
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
                name=name, metric=metric, mode=Direction.of(mode).value, space=_dumps(space.to_json()), config=_dumps(config),
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
            id=row.id, name=row.name, metric=row.metric, mode=_word(Direction, row.mode, f"the mode of {what}"),
            space=space_from_json(_loads(row.space, f"the space of {what}"), f"the space of {what}"),
            config=_loads_object(row.config, f"the config of {what}"),
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
        return {r.name: _loads_object(r.config, f"the config of study {r.name!r}") for r in rows}

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
            mode = _word(Direction, r.mode, f"the mode of study {r.name!r}")
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
                "study_id": study_id, "number": number, "state": state, "params": _dumps(params), "seed": seed,
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
                "trial_id": trial_id, "state": state, "value": _finite_or_none(value), "values": _dumps(values),
                "error": error, "finished_at": time.time(),
            })

    @retrying
    def mark_interrupted(self, study_id: int, trial_ids: Iterable[int] | None = None) -> int:
        """Mark running/queued trials interrupted (all of the study's, or the given ones)."""
        t = schema.trials
        stmt = update(t).where(t.c.study_id == study_id, t.c.state.in_(_ACTIVE))
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

    # == leases (issue 15): one live driver per running trial =================================
    # A driver holds a lease on each trial it runs and renews all of them every few seconds. Another
    # driver of the same study takes over only trials whose lease is stale (or whose driver is a dead
    # process on this machine) and leaves live ones alone; new trials claim their number here.
    @retrying
    def claim_trial(self, study_id: int, params: dict[str, Any], seed_of: Callable[[int], int], lease: Lease,
                    limit: int | None = None, number: int | None = None) -> tuple[int, int, int] | None:
        """A new running trial with the study's next free number, leased to ``lease``, in one
        transaction: (id, number, seed), or None when numbers 0 to ``limit`` - 1 are all taken (numbers
        are dense: each is the last one plus one, so that is ``limit`` trials). ``number``: the one to
        try first (the caller's last plus one), which saves reading the last one when it is free."""
        t = schema.trials
        for _ in range(1000):  # each turn lost to another driver's insert means a new trial exists
            with self._write() as conn:
                if number is None:
                    top = conn.execute(_LAST_NUMBER, {"study_id": study_id}).scalar()
                    number = 0 if top is None else int(top) + 1
                if limit is not None and number >= limit:
                    return None
                seed, now = seed_of(number), time.time()
                trial_id = _insert_new(conn, t, {
                    "study_id": study_id, "number": number, "state": TrialState.RUNNING.value, "params": _dumps(params),
                    "seed": seed, "attempt": 0, "created_at": now, "started_at": now}, ("study_id", "number"))
                if trial_id is not None:
                    conn.execute(_INSERT_LEASE, {"trial_id": trial_id, **lease.row(now)})
                    return int(trial_id), number, seed
            number = None  # taken (all below the last one are): read the last one
        raise StorageError(f"Cannot claim a trial number in {self.url}: other drivers kept taking them.")

    @retrying
    def take_over(self, study_id: int, lease: Lease, stale_after: float) -> list[int]:
        """Lease to ``lease`` every unfinished trial of the study (running, queued, interrupted) that
        no live driver holds, marking running ones interrupted; their ids, by number. A lease is live
        while its heartbeat is younger than ``stale_after`` s and, on this machine, its process lives."""
        t, lt = schema.trials, schema.leases
        with self._read() as conn:
            rows = conn.execute(select(t.c.id, lt.c.owner, lt.c.host, lt.c.pid, lt.c.heartbeat_at)
                                .select_from(t.outerjoin(lt, lt.c.trial_id == t.c.id))
                                .where(t.c.study_id == study_id, t.c.state.in_(_UNFINISHED))
                                .order_by(t.c.number)).all()
        now = time.time()
        return [r.id for r in rows if not _live(r, now, stale_after, lease) and self._claim(r, lease, now)]

    def _claim(self, row: Any, lease: Lease, now: float) -> bool:
        """Compare and swap: the lease as it was read becomes ours (a missing one is inserted), and
        the trial, if still unfinished, is interrupted; False when another driver got there first."""
        t, lt = schema.trials, schema.leases
        with self._write() as conn:
            if row.owner is None:
                got = _insert_new(conn, lt, {"trial_id": row.id, **lease.row(now)}, ("trial_id",)) is not None
            else:
                got = conn.execute(update(lt).where(lt.c.trial_id == row.id, lt.c.owner == row.owner,
                                                    lt.c.heartbeat_at == row.heartbeat_at)
                                   .values(**lease.row(now))).rowcount == 1
            if got and conn.execute(select(t.c.state).where(t.c.id == row.id)).scalar() not in _UNFINISHED:
                conn.execute(delete(lt).where(lt.c.trial_id == row.id))  # finished meanwhile: nothing to take
                return False
            if got:
                conn.execute(update(t).where(t.c.id == row.id, t.c.state.in_(_ACTIVE))
                             .values(state=TrialState.INTERRUPTED.value, finished_at=now))
        return got

    @retrying
    def renew_leases(self, owner: str) -> int:
        """The heartbeat: every lease ``owner`` holds is fresh again; how many it holds."""
        lt = schema.leases
        with self._write() as conn:
            return int(conn.execute(update(lt).where(lt.c.owner == owner).values(heartbeat_at=time.time())).rowcount)

    @retrying
    def finish_leased_trial(self, trial_id: int, owner: str, state: str, value: float | None,
                            values: dict[str, float], error: str | None = None,
                            batch: Mapping[str, Sequence[dict[str, Any]]] | None = None) -> bool:
        """``finish_trial`` for the driver holding the trial's lease, dropping the lease in the same
        transaction. False (the end not recorded) when another driver has taken the trial over;
        ``batch`` (other trials' rows too) is written either way."""
        with self._write() as conn:
            if batch:
                self.write_batch(batch, conn)
            dropped = conn.execute(_DROP_LEASE, {"trial_id": trial_id, "owner": owner}).rowcount
            if not dropped and conn.execute(_LEASE_HOLDER, {"trial_id": trial_id}).scalar() is not None:
                return False  # another driver holds it
            conn.execute(self._finish_trial, {
                "trial_id": trial_id, "state": state, "value": _finite_or_none(value), "values": _dumps(values),
                "error": error, "finished_at": time.time(),
            })
        return True

    @retrying
    def release_leases(self, owner: str, trial_ids: Iterable[int] | None = None, *, interrupt: bool = False) -> None:
        """Drop ``owner``'s leases (all, or those of ``trial_ids``) so another driver may take the trials
        at once; ``interrupt`` first marks those still running interrupted (Ctrl-C, an error)."""
        t, lt = schema.trials, schema.leases
        held = lt.c.owner == owner
        if trial_ids is not None:
            held = held & lt.c.trial_id.in_(list(trial_ids))
        with self._write() as conn:
            if interrupt:
                conn.execute(update(t).where(t.c.id.in_(select(lt.c.trial_id).where(held)),
                                             t.c.state.in_(_ACTIVE))
                             .values(state=TrialState.INTERRUPTED.value, finished_at=time.time()))
            conn.execute(delete(lt).where(held))

    @retrying
    def leases(self, study_id: int) -> dict[int, dict[str, Any]]:
        """The study's leases by trial id: owner, host, pid, heartbeat_at (for tests and tools)."""
        t, lt = schema.trials, schema.leases
        with self._read() as conn:
            rows = conn.execute(select(lt).join(t, t.c.id == lt.c.trial_id).where(t.c.study_id == study_id)).all()
        return {r.trial_id: {"owner": r.owner, "host": r.host, "pid": r.pid, "heartbeat_at": r.heartbeat_at}
                for r in rows}
    # == end of leases ========================================================================

    # -- plumbing -------------------------------------------------------------------------
    def _write(self) -> Any:
        if self.read_only:  # a reading command never writes; say so instead of the driver's error
            raise StorageError(f"The store {self.url} was opened read-only (for reading); open it with "
                               f"Store(url) to write.")
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
        if isinstance(exc_info[1], OverflowError):  # an integer the driver cannot bind (past 64 bits)
            raise ConfigError(f"A number is too large for the store {self.store.url} ({exc_info[1]}); "
                              f"ids, trial numbers and seeds are 64-bit integers.") from None
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
        id=row.id, study_id=row.study_id, number=row.number,
        state=_word(TrialState, row.state, f"the state of {what}"),
        params=_loads_object(row.params, f"the params of {what}"), seed=row.seed, attempt=row.attempt,
        value=row.value, values=_loads_object(row.values, f"the values of {what}"), error=row.error,
        created_at=row.created_at, started_at=row.started_at, finished_at=row.finished_at,
    )


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


# == leases (issue 15): who holds a trial, and whether that driver still lives ======================
_ACTIVE = (TrialState.RUNNING.value, TrialState.QUEUED.value)  # a driver may still be running these
_UNFINISHED = (*_ACTIVE, TrialState.INTERRUPTED.value)


@dataclass(frozen=True)
class Lease:
    """Who runs a trial: one driver run (``owner``), process ``pid`` on machine ``host``."""

    owner: str
    host: str
    pid: int

    @classmethod
    def mine(cls) -> Lease:
        """A new owner id for this driver run, in this process on this machine."""
        return cls(uuid.uuid4().hex, this_host(), os.getpid())

    def row(self, now: float) -> dict[str, Any]:
        return {"owner": self.owner, "host": self.host, "pid": self.pid, "heartbeat_at": now}


@functools.cache
def this_host() -> str:
    """This machine as leases name it: the hostname plus the PID namespace (containers sharing a
    hostname still differ), so a PID is only ever checked where it means the same process."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return f"{socket.gethostname()} {namespace}".strip()[:255]


def _alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine still runs (a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists (another user's, say)
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


def _live(row: Any, now: float, stale_after: float, lease: Lease) -> bool:
    """Whether another driver still holds this trial (``row``: a trial joined with its lease)."""
    if row.owner is None or row.owner == lease.owner:
        return False
    if now - row.heartbeat_at >= stale_after:
        return False
    return not (row.host == this_host() and not _alive(row.pid))  # killed on this machine: free at once


# statements every trial runs, built once (building them costs more than running them)
_LAST_NUMBER = select(func.max(schema.trials.c.number)).where(schema.trials.c.study_id == bindparam("study_id"))
_INSERT_LEASE = insert(schema.leases)
_LEASE_HOLDER = select(schema.leases.c.owner).where(schema.leases.c.trial_id == bindparam("trial_id"))
_DROP_LEASE = delete(schema.leases).where(schema.leases.c.trial_id == bindparam("trial_id"),
                                          schema.leases.c.owner == bindparam("owner"))
_INSERT_NEW: dict[tuple[str, str, tuple[str, ...]], Any] = {}


def _insert_new(conn: Any, table: Any, values: dict[str, Any], keys: tuple[str, ...]) -> Any:
    """Insert the row unless one with the same ``keys`` exists: its primary key, or None. No error is
    raised on a conflict, so the transaction goes on (PostgreSQL would abort it)."""
    name = conn.dialect.name
    if name not in ("sqlite", "postgresql"):
        try:
            with conn.begin_nested():
                return conn.execute(insert(table), values).inserted_primary_key[0]
        except IntegrityError:
            return None
    stmt = _INSERT_NEW.get((name, table.name, keys))
    if stmt is None:
        dialect_insert = importlib.import_module(f"sqlalchemy.dialects.{name}").insert
        stmt = dialect_insert(table).on_conflict_do_nothing(index_elements=list(keys)).returning(
            next(iter(table.primary_key.columns)))
        _INSERT_NEW[(name, table.name, keys)] = stmt
    return conn.execute(stmt, values).scalar()
# == end of leases ==================================================================================
