"""Leases: which live driver runs a trial, so that several drivers can share one study.

A driver holds a lease on each trial it runs and renews all of them every few seconds (one
UPDATE). Another driver of the same study takes over only trials whose lease is stale (or whose
driver is a dead process on this machine) and leaves live ones alone. New trials claim their
number in the transaction that leases them, so no number is used twice.

Every trial pays for its lease twice, when it is claimed and when it finishes, so those two
paths use the fewest statements each back end allows:

- claiming: the trial's ``INSERT ... ON CONFLICT DO NOTHING`` and the lease's ``INSERT``, in one
  transaction; on PostgreSQL one statement (the lease is inserted from the trial's ``RETURNING``).
- finishing: on PostgreSQL one statement deletes the lease and records the end; the lease row's
  lock is what orders a finish against a take-over. SQLite has one writer at a time, so there the
  end is one UPDATE guarded by "no other driver holds it", and the finished trial's lease row is
  dropped in bulk by the next heartbeat, the next take-over or the run's end.

A lease on a finished trial means nothing: take-overs, :meth:`LeasesMixin.leases` and
``release_leases(interrupt=True)`` only ever look at unfinished trials.
"""

from __future__ import annotations

import functools
import importlib
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Float, Integer, String, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from tuneloop.errors import StorageError
from tuneloop.store import schema
from tuneloop.store._retry import retrying
from tuneloop.store._rows import dumps, finite_or_none
from tuneloop.store.records import TrialState

ACTIVE_STATES = (TrialState.RUNNING.value, TrialState.QUEUED.value)  # a driver may still be running these
UNFINISHED_STATES = (*ACTIVE_STATES, TrialState.INTERRUPTED.value)
_TAKEABLE = (TrialState.RUNNING.value, TrialState.INTERRUPTED.value)  # queued trials wait for claim_queued


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


class LeasesMixin:
    """Claiming trial numbers, holding, renewing, taking over and dropping leases (a part of ``Store``)."""

    url: str
    is_sqlite: bool
    _finish_trial: Any  # the plain end-of-trial UPDATE, built by Store

    if TYPE_CHECKING:  # provided by Store and LogsMixin
        def _write(self) -> Any: ...
        def _read(self) -> Any: ...
        def write_batch(self, batch: Mapping[str, Sequence[dict[str, Any]]], conn: Any = None) -> None: ...

    @retrying
    def claim_trial(self, study_id: int, params: dict[str, Any], seed_of: Callable[[int], int], lease: Lease,
                    limit: int | None = None, number: int | None = None) -> tuple[int, int, int] | None:
        """A new running trial with the study's next free number, leased to ``lease``, in one
        transaction: (id, number, seed), or None when numbers 0 to ``limit`` - 1 are all taken (numbers
        are dense: each is the last one plus one, so that is ``limit`` trials). ``number``: the one to
        try first (the caller's last plus one), which saves reading the last one when it is free."""
        # one transaction for every try: a number another driver took costs one statement (the insert does
        # nothing), not a new transaction; PostgreSQL reads each statement afresh, SQLite holds the write lock
        with self._write() as conn:
            for _ in range(1000):  # each turn lost to another driver's insert means a new trial exists
                if number is None:
                    top = conn.execute(_LAST_NUMBER, {"study_id": study_id}).scalar()
                    number = 0 if top is None else int(top) + 1
                if limit is not None and number >= limit:
                    return None
                seed, now = seed_of(number), time.time()
                trial = {"study_id": study_id, "number": number, "state": TrialState.RUNNING.value,
                         "params": dumps(params), "seed": seed, "attempt": 0, "created_at": now, "started_at": now}
                trial_id = _insert_leased(conn, trial, lease.row(now))
                if trial_id is not None:
                    return int(trial_id), number, seed
                number = None  # taken (all below the last one are): read the last one
        raise StorageError(f"Cannot claim a trial number in {self.url}: other drivers kept taking them.")

    @retrying
    def finished_numbers(self, study_id: int) -> dict[int, int]:
        """{trial id: number} of the study's finished trials, in one narrow query: how a driver finds
        the trials other drivers finished without reading every trial again."""
        t = schema.trials
        with self._read() as conn:
            rows = conn.execute(select(t.c.id, t.c.number).where(t.c.study_id == study_id,
                                                                 t.c.state.not_in(UNFINISHED_STATES))).all()
        return {int(i): int(n) for i, n in rows}

    @retrying
    def repropose(self, trial_id: int, owner: str, params: dict[str, Any]) -> bool:
        """The trial ``owner`` just claimed (running, attempt 0, leased to it) holds ``params`` instead:
        a driver's first configuration proposed again from a reseeded searcher, before the trial
        starts. False when the trial is not that (nothing changed)."""
        t, lt = schema.trials, schema.leases
        held = select(lt.c.trial_id).where(lt.c.trial_id == trial_id, lt.c.owner == owner).exists()
        with self._write() as conn:
            return conn.execute(update(t).where(t.c.id == trial_id, t.c.state == TrialState.RUNNING.value,
                                                t.c.attempt == 0, held)
                                .values(params=dumps(params))).rowcount == 1

    @retrying
    def take_over(self, study_id: int, lease: Lease, stale_after: float) -> list[int]:
        """Lease to ``lease`` every running or interrupted trial of the study (queued ones wait to be claimed) that
        no live driver holds, marking running ones interrupted; their ids, by number. A lease is live
        while its heartbeat is younger than ``stale_after`` s and, on this machine, its process lives."""
        t, lt = schema.trials, schema.leases
        with self._write() as conn:  # leases finished trials still carry (a killed SQLite driver's) go first
            conn.execute(_DROP_FINISHED_OF_STUDY, {"study_id": study_id})
        with self._read() as conn:
            rows = conn.execute(select(t.c.id, lt.c.owner, lt.c.host, lt.c.pid, lt.c.heartbeat_at)
                                .select_from(t.outerjoin(lt, lt.c.trial_id == t.c.id))
                                .where(t.c.study_id == study_id, t.c.state.in_(_TAKEABLE))  # queued: claimed
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
            if got and conn.execute(select(t.c.state).where(t.c.id == row.id)).scalar() not in UNFINISHED_STATES:
                conn.execute(delete(lt).where(lt.c.trial_id == row.id))  # finished meanwhile: nothing to take
                return False
            if got:
                conn.execute(update(t).where(t.c.id == row.id, t.c.state.in_(ACTIVE_STATES))
                             .values(state=TrialState.INTERRUPTED.value, finished_at=now))
        return got

    @retrying
    def renew_leases(self, owner: str) -> int:
        """The heartbeat: every lease ``owner`` holds on an unfinished trial is fresh again (those on
        finished trials, which SQLite leaves to this beat, are dropped); how many it holds."""
        with self._write() as conn:
            conn.execute(_DROP_FINISHED_OF_OWNER, {"owner": owner})
            return int(conn.execute(_RENEW, {"holder": owner, "now": time.time()}).rowcount)

    @retrying
    def finish_leased_trial(self, trial_id: int, owner: str, state: str, value: float | None,
                            values: dict[str, float], error: str | None = None,
                            batch: Mapping[str, Sequence[dict[str, Any]]] | None = None) -> bool:
        """``finish_trial`` for the driver holding the trial's lease, dropping the lease in the same
        transaction (SQLite: at the next heartbeat). False (the end not recorded) when another driver
        has taken the trial over; ``batch`` (other trials' rows too) is written either way."""
        end = {"trial_id": trial_id, "owner": owner, "state": state, "value": finite_or_none(value),
               "values": dumps(values), "error": error, "finished_at": time.time()}
        with self._write() as conn:
            if batch:
                self.write_batch(batch, conn)
            name = conn.dialect.name
            if name in ("sqlite", "postgresql"):  # one statement; no row: another driver holds it (or no trial)
                return bool(conn.execute(_FINISH_UNLESS_HELD if name == "sqlite" else _pg_finish(), end).rowcount
                            or conn.execute(_LEASE_HOLDER, end).scalar() is None)
            dropped = conn.execute(_DROP_LEASE, end).rowcount
            if not dropped and conn.execute(_LEASE_HOLDER, end).scalar() is not None:
                return False  # another driver holds it
            conn.execute(self._finish_trial, end)
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
                                             t.c.state.in_(ACTIVE_STATES))
                             .values(state=TrialState.INTERRUPTED.value, finished_at=time.time()))
            conn.execute(delete(lt).where(held))

    @retrying
    def leases(self, study_id: int) -> dict[int, dict[str, Any]]:
        """The leases on the study's unfinished trials, by trial id: owner, host, pid, heartbeat_at."""
        t, lt = schema.trials, schema.leases
        with self._read() as conn:
            rows = conn.execute(select(lt).join(t, t.c.id == lt.c.trial_id)
                                .where(t.c.study_id == study_id, t.c.state.in_(UNFINISHED_STATES))).all()
        return {r.trial_id: {"owner": r.owner, "host": r.host, "pid": r.pid, "heartbeat_at": r.heartbeat_at}
                for r in rows}


# -- whether a lease's driver still lives ------------------------------------------------------
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


# -- statements every trial runs, built once (building them costs more than running them) ------------
_t, _lt = schema.trials, schema.leases
_LAST_NUMBER = select(func.max(_t.c.number)).where(_t.c.study_id == bindparam("study_id"))
_INSERT_LEASE = insert(_lt)
_LEASE_HOLDER = select(_lt.c.owner).where(_lt.c.trial_id == bindparam("trial_id"))
_DROP_LEASE = delete(_lt).where(_lt.c.trial_id == bindparam("trial_id"), _lt.c.owner == bindparam("owner"))
_RENEW = update(_lt).where(_lt.c.owner == bindparam("holder")).values(heartbeat_at=bindparam("now"))  # not "owner": a column
_END: dict[str, Any] = {c: bindparam(c) for c in ("state", "value", "values", "error", "finished_at")}
_HELD_BY_ANOTHER = select(_lt.c.trial_id).where(_lt.c.trial_id == bindparam("trial_id"),
                                                _lt.c.owner != bindparam("owner")).exists()
# SQLite (one writer at a time): record the end unless another driver holds the trial
_FINISH_UNLESS_HELD = update(_t).where(_t.c.id == bindparam("trial_id"), ~_HELD_BY_ANOTHER).values(**_END)
_FINISHED = select(_t.c.id).where(_t.c.id == _lt.c.trial_id, _t.c.state.not_in(UNFINISHED_STATES)).exists()
_DROP_FINISHED_OF_OWNER = delete(_lt).where(_lt.c.owner == bindparam("owner"), _FINISHED)
_DROP_FINISHED_OF_STUDY = delete(_lt).where(_lt.c.trial_id.in_(
    select(_t.c.id).where(_t.c.study_id == bindparam("study_id"), _t.c.state.not_in(UNFINISHED_STATES))))
_CLAIM_COLUMNS = ("study_id", "number", "state", "params", "seed", "attempt", "created_at", "started_at")
_INSERT_NEW: dict[tuple[str, str, tuple[str, ...]], Any] = {}


@functools.cache
def _pg_claim() -> Any:
    """PostgreSQL: the trial inserted unless its number is taken, and its lease inserted from the
    trial's RETURNING, in one statement (one round trip); returns the trial id, or no row."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    claimed = (pg_insert(_t).values({c: bindparam(f"new_{c}") for c in _CLAIM_COLUMNS})
               .on_conflict_do_nothing(index_elements=["study_id", "number"]).returning(_t.c.id).cte("claimed"))
    lease = select(claimed.c.id, bindparam("lease_owner", type_=String), bindparam("lease_host", type_=String),
                   bindparam("lease_pid", type_=Integer), bindparam("lease_heartbeat_at", type_=Float))
    return (insert(_lt).from_select(["trial_id", "owner", "host", "pid", "heartbeat_at"], lease)
            .returning(_lt.c.trial_id))


@functools.cache
def _pg_finish() -> Any:
    """PostgreSQL: delete our lease and record the end in one statement, unless another driver holds
    the trial. Both parts see the statement's snapshot: the end is written when our lease was
    dropped or there was none. A take-over committed meanwhile changed the lease row our DELETE
    waits for, so that DELETE finds nothing and the end is not written."""
    dropped = _DROP_LEASE.returning(_lt.c.trial_id).cte("dropped")
    held = select(_lt.c.trial_id).where(_lt.c.trial_id == bindparam("trial_id")).exists()
    return (update(_t).where(_t.c.id == bindparam("trial_id"), or_(select(dropped.c.trial_id).exists(), ~held))
            .values(**_END))


def _insert_leased(conn: Any, trial: dict[str, Any], lease: dict[str, Any]) -> Any:
    """Insert the trial and its lease unless its number is taken: its id, or None."""
    if conn.dialect.name == "postgresql":
        params = {**{f"new_{c}": trial[c] for c in _CLAIM_COLUMNS}, **{f"lease_{k}": v for k, v in lease.items()}}
        return conn.execute(_pg_claim(), params).scalar()
    trial_id = _insert_new(conn, _t, trial, ("study_id", "number"))
    if trial_id is not None:
        conn.execute(_INSERT_LEASE, {"trial_id": trial_id, **lease})
    return trial_id


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
        stmt = dialect_insert(table).on_conflict_do_nothing(index_elements=list(keys))
        if name == "postgresql":
            stmt = stmt.returning(next(iter(table.primary_key.columns)))
        _INSERT_NEW[(name, table.name, keys)] = stmt
    result = conn.execute(stmt, values)
    if name == "postgresql":
        return result.scalar()
    # SQLite: the row count and rowid say it, cheaper than RETURNING (both tables' keys are rowids)
    return result.lastrowid if result.rowcount == 1 else None
