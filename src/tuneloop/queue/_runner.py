"""``tuneloop queue run``: take the queue's jobs one at a time and run each as a child process.

The runner claims the next job (a job whose runner died comes first: it resumes), checks that this
user signed it and that its files are unchanged (else marks it failed with the reason and runs
nothing), runs its command with ``TUNELOOP_STORAGE`` set to the queue's database, renews its
heartbeat while the child runs, and records the exit code and the last 4 KB of output.

The window: no job starts after its end, and a job whose estimate exceeds the time left is left
queued with the reason; a job running when the window ends is let finish (killing it would waste
what it has done, and a study resumes anyway). The runner stops when nothing it may start is left
(or, with ``poll``, waits for new jobs until the window ends), when the queue is paused, or when the
window ends.

Stopping it (Ctrl-C, SIGTERM): the child's process group (the child runs in a session of its own, so
its trial workers are in it) gets SIGINT (a study marks its running trials interrupted), SIGKILL
after 30 s or at a second Ctrl-C; further signals cannot interrupt that. The job is then recorded, in
any case: queued again where it was (the next ``tuneloop queue run`` resumes it), or done when the
child still exited 0. A runner killed outright (SIGKILL, a power cut) leaves its job running under a
dead runner: its child gets SIGINT from the kernel (Linux), and the next runner takes the job over (at
once on this machine, after ``stale_after`` seconds elsewhere), as attempt 2. SIGINT rather than
SIGKILL as that parent-death signal: the child's own SIGINT handling stops its workers and marks its
trials interrupted, which SIGKILL would skip (leaving them running until their leases expire).

A runner whose heartbeat could not be stored for ``stale_after`` seconds (a suspended laptop, a
database unreachable past its retries, clocks apart) may find its job taken over by another runner:
it then stops its child at its next heartbeat and records nothing (the other runner does). A
heartbeat the store refuses leaves the child running and is tried again.

One job runs at a time; several jobs at once (``--workers``, ``--gpus``) can come later: two runners
on one database already share the queue without running a job twice.
"""

from __future__ import annotations

import collections
import ctypes
import datetime as dt
import functools
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tuneloop._text import plain
from tuneloop.errors import ConfigError, StorageError
from tuneloop.queue._estimate import estimate
from tuneloop.queue._kinds import command, refusal
from tuneloop.store._jobs import STALE_AFTER, TAIL_CHARS
from tuneloop.store.records import JobRecord, JobState

_PR_SET_PDEATHSIG = 1  # Linux prctl: a signal the child gets when its parent dies


def window_end(until: str | None, hours: float | None, now: dt.datetime | None = None) -> float | None:
    """When the window ends (epoch seconds), from ``--until HH:MM`` (its next occurrence, local time)
    or ``--hours H``; None without either."""
    if until is not None and hours is not None:
        raise ConfigError("Give the window as --until HH:MM or --hours H, not both.")
    now = now or dt.datetime.now()
    if hours is not None:
        if not hours > 0:
            raise ConfigError(f"--hours takes a positive number of hours, not {hours:g}.")
        return now.timestamp() + hours * 3600
    if until is None:
        return None
    try:
        at = dt.datetime.strptime(until.strip(), "%H:%M").time()
    except ValueError:
        raise ConfigError(f"--until takes a time of day as HH:MM (e.g. 07:00), not {until!r:.40}.") from None
    end = dt.datetime.combine(now.date(), at)
    if end <= now:
        end += dt.timedelta(days=1)
    return end.timestamp()


def duration(seconds: float) -> str:
    """Seconds as a person reads a duration: ``40 s``, ``12 min``, ``2.1 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass
class Summary:
    """What one ``queue run`` did."""

    ran: list[tuple[int, JobState]] = field(default_factory=list)  # (job id, how it ended)
    left: dict[int, str] = field(default_factory=dict)  # job id -> why it was left queued
    stopped: str = ""  # why the runner stopped
    interrupted: JobState | None = None  # how the job running at Ctrl-C/SIGTERM was recorded


class Runner:
    """One runner of the queue in ``store`` (a ``Store`` opened for writing)."""

    def __init__(self, store: Any, *, end: float | None = None, poll: float | None = None,
                 stale_after: float = STALE_AFTER, say: Callable[[str], None] = print,
                 echo: Callable[[str], None] = print) -> None:
        self.store, self.end, self.poll, self.stale_after = store, end, poll, stale_after
        self.say, self.echo = say, echo
        self.id = uuid.uuid4().hex
        self.summary = Summary()
        self.stopping = False  # Ctrl-C or SIGTERM came while a job ran (and it still ended on its own)

    def run(self) -> Summary:
        while True:
            now = time.time()
            if self.end is not None and now >= self.end:
                self.summary.stopped = "the window ended"
                break
            if self.store.queue_paused():
                self.summary.stopped = "the queue is paused (tuneloop queue resume)"
                break
            job = self.store.claim_next(self.id, os.getpid(), now, self.stale_after, accept=self._fits)
            if job is None:
                if self.poll is not None:
                    time.sleep(self.poll if self.end is None else max(0.0, min(self.poll, self.end - time.time())))
                    continue
                self.summary.stopped = ("nothing left fits the window" if self.summary.left
                                        else "the queue is empty")
                break
            self._start(job)
            if self.stopping:  # Ctrl-C or SIGTERM as its job ended on its own: recorded as it ended
                if self.summary.ran and self.summary.ran[-1][0] == job.id:
                    self.summary.interrupted = self.summary.ran[-1][1]
                raise KeyboardInterrupt
        return self.summary

    def _fits(self, job: JobRecord) -> bool:
        """Whether ``job`` can finish in the window's time left (its estimate read afresh); a job that
        cannot is left queued with the reason."""
        expected = estimate(self.store, job)
        left = None if self.end is None else self.end - time.time()
        if expected is None or left is None or expected <= left:
            if job.state is JobState.QUEUED and job.estimate_s != expected:
                self.store.note_job(job.id, None, expected)
            return True
        reason = f"estimated {duration(expected)}, {duration(left)} left in the window"
        if job.state is JobState.RUNNING and not self.store.requeue_job(job, reason):
            return False  # its dead runner's job, queued again only as it was read: another runner took it
        if self.summary.left.get(job.id) is None:
            self.say(f"job {job.id} ({job.title}) stays queued: {reason}")
        self.summary.left[job.id] = reason
        self.store.note_job(job.id, reason, expected)
        return False

    def _start(self, job: JobRecord) -> None:
        why = refusal(job.kind, job.args, job.files, job.signature)
        if why is not None:
            if self.store.finish_job(job.id, self.id, JobState.FAILED, None, None, reason=why):
                self.summary.ran.append((job.id, JobState.FAILED))
                self.say(f"job {job.id} ({job.title}) {why}")
            return
        again = f", resuming after its runner stopped (attempt {job.attempts})" if job.attempts > 1 else ""
        self.say(f"job {job.id} ({job.title}) started{again}")
        state, code, tail = self._run_child(job)
        if code is None:
            return  # not ours any more: the runner that took it over records it
        last = next((line.strip() for line in reversed(tail.splitlines()) if line.strip()), "")
        reason = None if state is JobState.DONE else f"exit code {code}" + (f": {last[:200]}" if last else "")
        self._record(job, state, code, tail, reason)

    def _record(self, job: JobRecord, state: JobState, code: int | None, tail: str, reason: str | None) -> None:
        """Record how the job ended, and say so; nothing is said to be done that was not recorded."""
        if not self.store.finish_job(job.id, self.id, state, code, tail, reason=reason):
            self.say(f"job {job.id} ({job.title}) ended ({state}), but another runner had taken it over: that "
                     f"runner records it")
            return
        self.summary.ran.append((job.id, state))
        self.say(f"job {job.id} ({job.title}) {state}" + ("" if reason is None else f": {reason}"))

    def _run_child(self, job: JobRecord) -> tuple[JobState, int | None, str]:
        """Run the job's command to its end, heartbeating; (state, exit code, the tail of its output);
        exit code None when another runner took the job over.

        The child runs in a process group of its own, so stopping it reaches its trial workers too.
        While it runs, Ctrl-C and SIGTERM (in the main thread) only ask it to stop: the first stops the
        job (SIGINT to its group, SIGKILL after ``_GRACE`` s), a second kills the group at once; no
        further signal can leave the child running or the row held by this runner. The job is then
        recorded (done when the child still exited 0, else queued again) and KeyboardInterrupt raised."""
        env = {**os.environ, "TUNELOOP_STORAGE": self.store.url, "PYTHONSAFEPATH": "1"}
        tail: collections.deque[str] = collections.deque()
        size = [0]
        stop, hurry = threading.Event(), threading.Event()
        restore = _catch_stops(stop, hurry)
        try:
            child = subprocess.Popen(command(job.kind, job.args), env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                                     start_new_session=True,  # its own process group (and no terminal)
                                     preexec_fn=functools.partial(_child_setup, os.getpid()))  # signals only
            reader = threading.Thread(target=self._read, args=(child, tail, size), daemon=True)
            reader.start()
            status, error = "stopped", None
            try:
                status = self._watch(job, child, stop)
            except BaseException as exc:  # noqa: BLE001 - re-raised below, once the child is stopped
                error = exc
            if status == "stopped":
                self.say(f"job {job.id} ({job.title}): stopping it (Ctrl-C again or SIGTERM to kill it now)")
            _stop(child, hurry)  # after its end too: whatever of its group outlived it
            reader.join(timeout=5)  # EOF once every holder of the pipe is gone; a daemon thread otherwise
            if not reader.is_alive() and child.stdout is not None:
                child.stdout.close()  # never while the reader blocks on it: closing would wait for it
            text, code = "".join(tail), child.returncode
            if status == "lost":
                return JobState.FAILED, None, text
            if status == "exited":
                return (JobState.DONE if code == 0 else JobState.FAILED), code, text
            self.summary.interrupted = JobState.DONE if code == 0 else JobState.QUEUED
            if code == 0:  # it finished as it was being stopped
                self._record(job, JobState.DONE, code, text, None)
            else:
                self._record(job, JobState.QUEUED, None, text,
                             "interrupted: its runner was stopped; the next tuneloop queue run resumes it")
            raise error if error is not None else KeyboardInterrupt
        finally:
            restore()
            if stop.is_set():
                self.stopping = True

    def _watch(self, job: JobRecord, child: subprocess.Popen[str], stop: threading.Event) -> str:
        """Wait for the child, renewing the heartbeat: ``exited``; ``stopped`` (Ctrl-C, SIGTERM); ``lost``
        (another runner took the job over: it judged this runner dead). A heartbeat the store cannot
        take (busy or unreachable past its retries) leaves the child running and is tried again."""
        beat = max(0.2, min(5.0, self.stale_after / 4))
        due = time.monotonic() + beat
        while not stop.is_set():
            try:
                child.wait(timeout=0.2)
                return "exited"
            except subprocess.TimeoutExpired:
                pass
            if time.monotonic() < due:
                continue
            try:
                held = self.store.heartbeat_job(job.id, self.id)
            except StorageError as exc:
                self.say(f"job {job.id}: its heartbeat could not be stored ({str(exc)[:200]}); it keeps running "
                         f"and the heartbeat is tried again")
                held = True
            due = time.monotonic() + beat
            if not held:
                self.say(f"job {job.id} ({job.title}) was taken over by another runner (this one's heartbeat was "
                         f"late): stopping its run here")
                return "lost"
        return "stopped"

    def _read(self, child: subprocess.Popen[str], tail: collections.deque[str], size: list[int]) -> None:
        """Echo the child's output line by line, keeping its last ``TAIL_CHARS`` characters."""
        assert child.stdout is not None
        try:
            for line in child.stdout:
                self.echo(plain(line.rstrip("\n")))
                tail.append(line)
                size[0] += len(line)
                while size[0] > TAIL_CHARS and len(tail) > 1:
                    size[0] -= len(tail.popleft())
        except (OSError, ValueError):
            pass  # closed under it


_GRACE = 30.0  # seconds a stopped job has to stop on SIGINT before its group is killed


def _catch_stops(stop: threading.Event, hurry: threading.Event) -> Callable[[], None]:
    """While a child runs: SIGINT and SIGTERM set ``stop`` (the second one ``hurry``) instead of
    raising, so no signal lands in the middle of stopping it. Returns what restores the handlers.
    Only the main thread can set handlers; elsewhere signals do not reach this thread anyway."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, frame: Any) -> None:
        (hurry if stop.is_set() else stop).set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass  # none of it is left


def _stop(child: subprocess.Popen[str], hurry: threading.Event, grace: float = _GRACE) -> None:
    """Stop the job's process group: SIGINT (a study marks its running trials interrupted and exits),
    then SIGKILL after ``grace`` s or at once when ``hurry`` is set; the SIGKILL also takes down any of
    the group that outlived the child (a worker holding its output pipe). The child runs in a session
    of its own, so its group id is its PID (which stays reserved while any of the group lives)."""
    if child.poll() is None:
        _signal_group(child.pid, signal.SIGINT)
        deadline = time.monotonic() + grace
        while child.poll() is None and not hurry.is_set() and time.monotonic() < deadline:
            hurry.wait(0.1)
    _signal_group(child.pid, signal.SIGKILL)
    child.wait()


_LIBC: Any = None


def _child_setup(runner: int) -> None:
    """In the child before it runs: Ctrl-C's default (a runner started with SIGINT ignored would pass
    that on), and SIGINT when the runner dies, so a killed runner's child stops too (Linux); a runner
    that died before that was set leaves the child nothing to do."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, int(signal.SIGINT))
        if os.getppid() != runner:
            os._exit(130)


def _load_libc() -> None:
    global _LIBC
    if _LIBC is None and hasattr(os, "fork") and os.uname().sysname == "Linux":
        try:
            _LIBC = ctypes.CDLL(None)
        except OSError:
            _LIBC = None


_load_libc()
