"""The job queue (a part of ``Store``): tuneloop commands that ``tuneloop queue run`` runs one after another.

A job is a row of ``jobs``: its kind and arguments (what to run), its place in the queue (``position``,
a float so a job moves between two others by taking a value between theirs), its state and, while it
runs, the runner holding it (a uuid per ``queue run``, with its host and PID) and that runner's heartbeat.

Claiming is a compare-and-swap, as trials' leases are (``_leases``): the runner reads what it may
take, then one conditional UPDATE takes a job only if it is still as read (queued, or still held by
the same dead runner with the same heartbeat); a lost race (row count 0) moves on to the next job. A
running job whose runner's heartbeat is older than ``stale_after`` seconds, or whose runner is a dead
process on this machine, is taken over (its ``attempts`` grows by one): its command runs again, and a
study resumes from the store. Only the holder may heartbeat or finish a job, so no job is recorded
twice. Reading never writes. The queue-wide pause is a ``tuneloop_meta`` row (``queue_paused``).

The database is untrusted: every row is checked as it is decoded (its JSON, its state, and every number
and text column's type and range), and what a job may run is decided by its signature
(``tuneloop.queue``), never by the row alone. A row that fails the check is a one-line "Corrupt row"
StorageError where it is read (``jobs``, ``job``); a runner looking for work passes it over (it is
never run, taken over or estimated) until it is repaired or removed.

A database from before the queue (schema 7, no ``jobs`` table) opened read-only reads as an empty queue.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, inspect, select, update

from tuneloop.errors import ConfigError, NotFound, StorageError
from tuneloop.store import schema
from tuneloop.store._leases import _alive, _insert_new, this_host
from tuneloop.store._retry import retrying
from tuneloop.store._rows import dumps, loads, word
from tuneloop.store.records import JobRecord, JobState

TAIL_CHARS = 4096  # how much of a job's output is kept: its last 4 KB
STALE_AFTER = 180.0  # seconds without a heartbeat after which a runner of another machine counts as dead:
# well above the store's retry window (``retry_seconds``, 60 s), so a heartbeat held up by a busy or
# briefly unreachable database does not read as a dead runner
_MAX_PID = 2**31 - 1  # a pid_t
_PAUSED_KEY = "queue_paused"


class JobsMixin:
    """Adding, listing, ordering, pausing and claiming the queue's jobs."""

    url: str
    read_only: bool

    if TYPE_CHECKING:  # provided by Store
        def _write(self) -> Any: ...
        def _read(self) -> Any: ...

    def _no_jobs_table(self, conn: Any) -> bool:
        """A read-only look at a database from before the queue (schema 7): no jobs table, no jobs
        (a writable store created it when it opened)."""
        return self.read_only and not inspect(conn).has_table(schema.jobs.name)

    # -- the queue as a person edits it ---------------------------------------------------------
    @retrying
    def add_job(self, kind: str, args: list[str], title: str, *, files: dict[str, str], signature: str | None,
                estimate_s: float | None = None) -> JobRecord:
        """A new queued job at the end of the queue."""
        j = schema.jobs
        with self._write() as conn:
            last = conn.execute(select(func.max(j.c.position))).scalar()
            job_id = conn.execute(j.insert().values(
                position=1.0 if last is None else float(last) + 1.0, kind=kind, args=dumps(list(args)), title=title,
                state=JobState.QUEUED.value, paused=0, attempts=0, created_at=time.time(), files=dumps(files),
                signature=signature, estimate_s=estimate_s)).inserted_primary_key[0]
        return self.job(int(job_id))

    @retrying
    def jobs(self, states: Iterable[str] | None = None) -> list[JobRecord]:
        """The jobs in queue order (by position, then id), of ``states`` only when given."""
        j = schema.jobs
        stmt = select(j).order_by(j.c.position, j.c.id)
        if states is not None:
            stmt = stmt.where(j.c.state.in_([str(s) for s in states]))
        with self._read() as conn:
            if self._no_jobs_table(conn):
                return []
            return [_job(r) for r in conn.execute(stmt).all()]

    @retrying
    def job(self, job_id: int) -> JobRecord:
        """One job; NotFound when there is none."""
        with self._read() as conn:
            row = None if self._no_jobs_table(conn) else conn.execute(
                select(schema.jobs).where(schema.jobs.c.id == job_id)).first()
        if row is None:
            raise NotFound(f"No job {job_id} in the queue of {self.url}; tuneloop queue list shows them.")
        return _job(row)

    @retrying
    def remove_job(self, job_id: int, stale_after: float = STALE_AFTER) -> None:
        """Take a job off the queue (it stays listed as removed). A running job cannot be removed while
        its runner lives; one whose runner died (as a runner judges it: a process of this machine that is
        gone, or no heartbeat for ``stale_after`` seconds) can, by the same compare-and-swap as a claim."""
        j = schema.jobs
        with self._write() as conn:
            done = conn.execute(update(j).where(j.c.id == job_id, j.c.state != JobState.RUNNING.value)
                                .values(state=JobState.REMOVED.value)).rowcount
        if done:
            return
        job = self.job(job_id)  # NotFound when there is none
        if _dead(job, time.time(), stale_after) and self._release(job, JobState.REMOVED, None):
            return
        raise ConfigError(f"Job {job.id} is running (attempt {job.attempts}), so it cannot be removed; stop "
                          f"its runner first (Ctrl-C in its terminal), then remove it.")

    @retrying
    def requeue_job(self, job: JobRecord, reason: str | None) -> bool:
        """Queue again a running job whose runner died, as it was read (the claim's compare-and-swap on
        its runner and heartbeat), with ``reason``; False when it changed meanwhile."""
        return self._release(job, JobState.QUEUED, reason)

    def _release(self, job: JobRecord, state: JobState, reason: str | None) -> bool:
        j = schema.jobs
        with self._write() as conn:
            return conn.execute(_as_read(update(j), job).values(
                state=state.value, reason=reason, runner=None, host=None, pid=None, heartbeat_at=None)).rowcount == 1

    @retrying
    def move_job(self, job_id: int, *, to: int | None = None, before: int | None = None) -> JobRecord:
        """Put a queued job at the ``to``-th place (1: next) among the queued jobs, or just before job
        ``before``; positions are renumbered when two neighbours come too close for a value between them."""
        if (to is None) == (before is None):
            raise ConfigError("Move a job with either --to POSITION or --before JOB_ID.")
        j = schema.jobs
        with self._write() as conn:
            rows = conn.execute(select(j.c.id, j.c.position, j.c.state).where(
                j.c.state == JobState.QUEUED.value).order_by(j.c.position, j.c.id)).all()
            ids = [r.id for r in rows]
            if job_id not in ids:
                self.job(job_id)  # NotFound when there is none
                raise ConfigError(f"Job {job_id} is not queued, so it has no place to move; only queued jobs move.")
            others = [r for r in rows if r.id != job_id]
            if before is not None:
                if before not in [r.id for r in others]:
                    raise ConfigError(f"Job {before} is not another queued job; --before takes a queued job's id "
                                      f"(tuneloop queue list shows them).")
                index = [r.id for r in others].index(before)
            else:
                assert to is not None
                if to < 1:
                    raise ConfigError(f"--to takes a place in the queue from 1 (next), not {to}.")
                index = min(to, len(others) + 1) - 1
            low = others[index - 1].position if index > 0 else None
            high = others[index].position if index < len(others) else None
            position = _between(low, high)
            if position is None:  # no float fits between them: renumber the queued jobs, this one in its place
                order = [r.id for r in others]
                order.insert(index, job_id)
                start = float(rows[0].position)
                for n, other in enumerate(order):
                    conn.execute(update(j).where(j.c.id == other).values(position=start + n))
            else:
                conn.execute(update(j).where(j.c.id == job_id).values(position=position))
        return self.job(job_id)

    @retrying
    def pause_job(self, job_id: int, paused: bool = True) -> JobRecord:
        """Hold a queued job (no runner starts it) or let it go again."""
        j = schema.jobs
        with self._write() as conn:
            done = conn.execute(update(j).where(j.c.id == job_id, j.c.state == JobState.QUEUED.value)
                                .values(paused=int(paused))).rowcount
        job = self.job(job_id)
        if not done:
            raise ConfigError(f"Job {job.id} is {job.state}, not queued; only a queued job can be paused or resumed.")
        return job

    @retrying
    def pause_queue(self, paused: bool = True) -> None:
        """Pause the whole queue (runners start no new job; the one running finishes) or resume it."""
        m = schema.meta
        with self._write() as conn:
            if paused:
                _insert_new(conn, m, {"key": _PAUSED_KEY, "value": dumps(time.time())}, ("key",))
            else:
                conn.execute(delete(m).where(m.c.key == _PAUSED_KEY))

    @retrying
    def queue_paused(self) -> bool:
        m = schema.meta
        with self._read() as conn:
            return conn.execute(select(m.c.key).where(m.c.key == _PAUSED_KEY)).first() is not None

    @retrying
    def note_job(self, job_id: int, reason: str | None, estimate_s: float | None) -> None:
        """Why a queued job was left queued (the window), and its estimate as it was judged."""
        j = schema.jobs
        with self._write() as conn:
            conn.execute(update(j).where(j.c.id == job_id, j.c.state == JobState.QUEUED.value)
                         .values(reason=reason, estimate_s=estimate_s))

    # -- runners --------------------------------------------------------------------------------------
    @retrying
    def claimable_jobs(self, now: float, stale_after: float) -> list[JobRecord]:
        """What a runner may start, in the order it should: running jobs whose runner died (resumed first),
        then queued, unpaused jobs by position. Nothing when the queue is paused."""
        j = schema.jobs
        with self._read() as conn:
            if self._no_jobs_table(conn):
                return []
            if conn.execute(select(schema.meta.c.key).where(schema.meta.c.key == _PAUSED_KEY)).first() is not None:
                return []
            rows = conn.execute(select(j).where(
                ((j.c.state == JobState.QUEUED.value) & (j.c.paused == 0)) | (j.c.state == JobState.RUNNING.value))
                .order_by(j.c.position, j.c.id)).all()
        jobs = []
        for r in rows:
            try:
                jobs.append(_job(r))
            except StorageError:
                continue  # a corrupt row is never run, taken over or estimated; queue list names it
        dead = [job for job in jobs if job.state is JobState.RUNNING and _dead(job, now, stale_after)]
        return dead + [job for job in jobs if job.state is JobState.QUEUED]

    @retrying
    def claim_job(self, job: JobRecord, runner: str, pid: int, now: float) -> JobRecord | None:
        """Compare and swap: ``job`` as it was read (queued, or running under its dead runner) becomes
        ``runner``'s, its attempts one more; None when another runner changed it first."""
        j = schema.jobs
        stmt = _as_read(update(j), job)
        if job.state is JobState.QUEUED:
            stmt = stmt.where(j.c.paused == 0)
        with self._write() as conn:
            if conn.execute(select(schema.meta.c.key).where(schema.meta.c.key == _PAUSED_KEY)).first() is not None:
                return None  # paused meanwhile
            got = conn.execute(stmt.values(
                state=JobState.RUNNING.value, runner=runner, host=this_host(), pid=pid, heartbeat_at=now,
                attempts=j.c.attempts + 1, started_at=now, finished_at=None, exit_code=None, reason=None)).rowcount
        return self.job(job.id) if got == 1 else None

    def claim_next(self, runner: str, pid: int, now: float, stale_after: float,
                   accept: Callable[[JobRecord], bool] | None = None) -> JobRecord | None:
        """The first job ``accept`` takes (every one without it) of :meth:`claimable_jobs`, claimed for
        ``runner``; None when there is none. A job another runner claimed first is passed over."""
        for _ in range(100):  # each turn lost to another runner means that runner took a job
            lost = False
            for job in self.claimable_jobs(now, stale_after):
                if accept is not None and not accept(job):
                    continue
                claimed = self.claim_job(job, runner, pid, now)
                if claimed is not None:
                    return claimed
                lost = True
            if not lost:
                return None
        raise StorageError(f"Cannot claim a job in {self.url}: other runners kept taking them.")

    @retrying
    def heartbeat_job(self, job_id: int, runner: str) -> bool:
        """The runner still holds the running job: its heartbeat is fresh again. False when it does
        not hold it any more (another runner took it over, or it was finished)."""
        j = schema.jobs
        with self._write() as conn:
            return conn.execute(update(j).where(j.c.id == job_id, j.c.runner == runner,
                                                j.c.state == JobState.RUNNING.value)
                                .values(heartbeat_at=time.time())).rowcount == 1

    @retrying
    def finish_job(self, job_id: int, runner: str, state: JobState | str, exit_code: int | None, tail: str | None,
                   reason: str | None = None) -> bool:
        """Record the end of a job ``runner`` holds (done, failed, or queued again when it was
        interrupted); False when it does not hold it (nothing recorded)."""
        state = JobState(state)
        j = schema.jobs
        again = state is JobState.QUEUED
        with self._write() as conn:
            return conn.execute(update(j).where(j.c.id == job_id, j.c.runner == runner,
                                                j.c.state == JobState.RUNNING.value).values(
                state=state.value, exit_code=exit_code, reason=reason, finished_at=None if again else time.time(),
                tail=None if tail is None else tail[-TAIL_CHARS:],
                **({"runner": None, "host": None, "pid": None, "heartbeat_at": None} if again else {}))).rowcount == 1


def _between(low: float | None, high: float | None) -> float | None:
    """A position strictly between two (either may be missing: the ends); None when no float fits."""
    if low is None and high is None:
        return 1.0
    if low is None:
        assert high is not None
        return high - 1.0
    if high is None:
        return low + 1.0
    middle = (low + high) / 2
    return middle if low < middle < high else None


def _as_read(stmt: Any, job: JobRecord) -> Any:
    """``stmt`` restricted to ``job``'s row as it was read: its state and, running, the runner that
    held it with the heartbeat it had (the compare of a compare-and-swap)."""
    j = schema.jobs
    stmt = stmt.where(j.c.id == job.id, j.c.state == job.state.value)
    if job.state is JobState.RUNNING:
        stmt = stmt.where(j.c.runner == job.runner, j.c.heartbeat_at == job.heartbeat_at)
    return stmt


def _dead(job: JobRecord, now: float, stale_after: float) -> bool:
    """Whether a running job's runner is gone: its heartbeat is stale, or it was a process of this machine that died."""
    if job.state is not JobState.RUNNING:
        return False
    if job.heartbeat_at is None or now - job.heartbeat_at >= stale_after:
        return True
    return job.host == this_host() and job.pid is not None and not _alive(job.pid)


def _corrupt(what: str, shape: str) -> StorageError:
    return StorageError(f"Corrupt row: {what} is not {shape}; repair or delete that row in the database.")


def _strings(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _corrupt(what, "a list of strings")
    return value


def _files(value: Any, what: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise _corrupt(what, "an object of file hashes")
    return value


def _text(value: Any, what: str, *, optional: bool = True) -> Any:
    if (value is None and optional) or isinstance(value, str):
        return value
    raise _corrupt(what, "text")


def _integer(value: Any, what: str, low: int, high: int, *, optional: bool = True) -> Any:
    """A stored whole number in ``[low, high]`` (SQLite keeps whatever was written: text, a float, a blob)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _corrupt(what, f"a whole number from {low} to {high}")
    return value


def _real(value: Any, what: str, *, optional: bool = True, low: float = -math.inf) -> Any:
    """A stored finite number (at least ``low``), as a float."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < low:
        raise _corrupt(what, "a finite number" if low == -math.inf else f"a finite number of at least {low:g}")
    return float(value)


def _job(row: Any) -> JobRecord:
    """A jobs row as a :class:`JobRecord`, every column checked: a corrupt-row StorageError names the first that fails."""
    what = f"job {row.id}"
    return JobRecord(
        id=row.id, position=_real(row.position, f"the position of {what}", optional=False),
        kind=_text(row.kind, f"the kind of {what}", optional=False),
        args=_strings(loads(row.args, f"the args of {what}"), f"the args of {what}"),
        title=_text(row.title, f"the title of {what}", optional=False),
        state=word(JobState, row.state, f"the state of {what}"),
        paused=bool(_integer(row.paused, f"the paused flag of {what}", 0, 1, optional=False)),
        runner=_text(row.runner, f"the runner of {what}"), host=_text(row.host, f"the host of {what}"),
        pid=_integer(row.pid, f"the pid of {what}", 1, _MAX_PID),
        heartbeat_at=_real(row.heartbeat_at, f"the heartbeat of {what}"),
        attempts=_integer(row.attempts, f"the attempts of {what}", 0, 1_000_000, optional=False),
        created_at=_real(row.created_at, f"the created time of {what}", optional=False),
        started_at=_real(row.started_at, f"the start time of {what}"),
        finished_at=_real(row.finished_at, f"the finish time of {what}"),
        exit_code=_integer(row.exit_code, f"the exit code of {what}", -_MAX_PID - 1, _MAX_PID),
        tail=_text(row.tail, f"the output of {what}"), reason=_text(row.reason, f"the reason of {what}"),
        estimate_s=_real(row.estimate_s, f"the estimate of {what}", low=0.0),
        files=_files(loads(row.files, f"the files of {what}"), f"the files of {what}"),
        signature=_text(row.signature, f"the signature of {what}"),
    )
