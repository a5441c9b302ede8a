"""``tuneloop queue run``: take the queue's jobs, up to ``workers`` at once, and run each as a child process.

The runner claims the next job (a job whose runner died comes first: it resumes), checks that this
user signed it and that its files are unchanged (else marks it failed with the reason and runs
nothing), runs its command with ``TUNELOOP_STORAGE`` set to the queue's database, renews its
heartbeat while the child runs, and records the exit code and the last 4 KB of output.

Several jobs at once: one claim loop in the main thread, and a thread per running job (a slot) that
runs the one-job code (start the child, watch and heartbeat it, stop it, record it). The main thread
alone claims, so the window rule and the queue's order are judged one job at a time, as with one
worker; it starts a job whenever a slot is free, and otherwise waits for a slot's end without reading
the store (a job left out of the window is judged again when a slot frees, not in a busy loop). The
slots only watch: signals are caught in the main thread for the whole run and reach every slot as one
``stop`` event (a second signal: ``hurry``), so every running child is stopped and recorded the same
way. A thread per slot rather than one loop polling every child keeps a job's life in one straight
function, which is the code that ran one job at a time, unchanged in what it does. With ``gpus``
each job gets one GPU of the pool (``CUDA_VISIBLE_DEVICES`` in its child's environment), given back
when it ends; there are never more slots than GPUs, so no two running jobs share one (``_pool.py``).

The window: no job starts after its end, and a job whose estimate exceeds the time left is left
queued with the reason (with several slots too: each job is judged against the time left as it
would start); a job running when the window ends is let finish (killing it would waste what it has
done, and a study resumes anyway). The runner stops starting jobs when nothing it may start is left
(or, with ``poll``, waits for new jobs until the window ends), when the queue is paused, or when the
window ends; it returns once the running jobs have ended.

Stopping it (Ctrl-C, SIGTERM): each running child's process group (a child runs in a session of its
own, so its trial workers are in it) gets SIGINT (a study marks its running trials interrupted),
SIGKILL after 30 s or at a second Ctrl-C; further signals cannot interrupt that. Each job is then
recorded, in any case: queued again where it was (the next ``tuneloop queue run`` resumes it), or done
when its child still exited 0. A runner killed outright (SIGKILL, a power cut) leaves its jobs running
under a dead runner: their children get SIGINT from the kernel (Linux), and the next runner takes
each job over (at once on this machine, after ``stale_after`` seconds elsewhere), as its next attempt.
SIGINT rather than SIGKILL as that parent-death signal: the child's own SIGINT handling stops its
workers and marks its trials interrupted, which SIGKILL would skip (leaving them running until their
leases expire).

A runner whose heartbeat could not be stored for ``stale_after`` seconds (a suspended laptop, a
database unreachable past its retries, clocks apart) may find a job taken over by another runner:
it then stops that child at its next heartbeat and records nothing (the other runner does). A
heartbeat the store refuses leaves the child running and is tried again. Two runners on one database
share the queue without running a job twice.

Notifications (``_notify.py``): each failed job as it fails, and a summary when the runner stops.
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

from tuneloop._load import pinned_env
from tuneloop._text import plain
from tuneloop.errors import ConfigError, StorageError
from tuneloop.queue._estimate import estimate
from tuneloop.queue._kinds import command, refusal
from tuneloop.queue._notify import SECRETS, Notifier, failure_message, summary_message
from tuneloop.queue._pool import slots
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

    ran: list[tuple[int, JobState]] = field(default_factory=list)  # (job id, how it ended), in the order they ended
    left: dict[int, str] = field(default_factory=dict)  # job id -> why it was left queued
    stopped: str = ""  # why the runner stopped
    interrupted: dict[int, JobState] = field(default_factory=dict)  # jobs running at Ctrl-C/SIGTERM: how recorded
    titles: dict[int, str] = field(default_factory=dict)  # job id -> its title, for every job it touched
    reasons: dict[int, str] = field(default_factory=dict)  # failed job id -> why
    busy_s: float = 0.0  # seconds of jobs run (two jobs at once for an hour: 2 h)
    wall_s: float = 0.0  # seconds the runner ran


class Runner:
    """One runner of the queue in ``store`` (a ``Store`` opened for writing): up to ``workers`` jobs at
    once, each pinned to a GPU of ``gpus`` (``CUDA_VISIBLE_DEVICES`` entries, one job per GPU) when given;
    ``notifier`` hears of each failed job and of the runner's end."""

    def __init__(self, store: Any, *, end: float | None = None, poll: float | None = None,
                 stale_after: float = STALE_AFTER, workers: int | None = None, gpus: list[str] | None = None,
                 notifier: Notifier | None = None, say: Callable[[str], None] = print,
                 echo: Callable[[str], None] = print) -> None:
        workers = slots(workers, gpus)
        self.store, self.end, self.poll, self.stale_after = store, end, poll, stale_after
        self.workers, self.notifier = workers, notifier or Notifier()
        self.say, self.echo = say, echo
        self.id = uuid.uuid4().hex
        self.summary = Summary()
        self._free_gpus = None if gpus is None else list(gpus)
        self._slots: dict[int, threading.Thread] = {}  # job id -> the thread running it
        self._lock = threading.Lock()  # the summary's sums and the GPU pool, written by slot threads
        self._errors: list[BaseException] = []  # raised in a slot thread: re-raised by run()
        self._ended_ids: list[int] = []  # slots that ended, not yet reaped by the main thread
        self._wake = threading.Event()  # a slot ended (set after its id is in _ended_ids)
        self._stop, self._hurry = threading.Event(), threading.Event()  # Ctrl-C/SIGTERM: first, second

    def run(self) -> Summary:
        """Run jobs until none is left to start (or the queue is paused, or the window ends), then wait
        for the running ones; KeyboardInterrupt once every job running at Ctrl-C/SIGTERM is recorded."""
        started = time.monotonic()
        restore = _catch_stops(self._stop, self._hurry)
        error: BaseException | None = None
        try:
            try:
                self.summary.stopped = self._claim_loop()
            except BaseException as exc:  # noqa: BLE001 - re-raised below, once every running job is recorded
                error = exc
            if error is not None or self._errors:
                self._stop.set()  # the running jobs stop and are queued again, as at Ctrl-C
            while self._slots:  # the jobs still running end on their own (or stop, at a signal)
                self._wait()
                self._reap()
            if error is None and self._errors:
                error = self._errors[0]
            if error is not None and not isinstance(error, KeyboardInterrupt):
                self.summary.stopped = f"an error: {plain(error)[:300]}"
            elif error is not None or self._stop.is_set():
                self.summary.stopped = "it was stopped (Ctrl-C or SIGTERM)"
        finally:
            restore()
            self.summary.wall_s = time.monotonic() - started
            self._notify_end()
        if error is not None:
            raise error
        if self._stop.is_set():
            raise KeyboardInterrupt
        return self.summary

    def _claim_loop(self) -> str:
        """Claim and start jobs while a slot is free; why it stopped starting them."""
        while True:
            self._reap()
            if self._errors or self._stop.is_set():
                return "it was stopped (Ctrl-C or SIGTERM)"
            if len(self._slots) >= self.workers:
                self._wait()
                continue
            now = time.time()
            if self.end is not None and now >= self.end:
                return "the window ended"
            if self.store.queue_paused():
                return "the queue is paused (tuneloop queue resume)"
            job = self.store.claim_next(self.id, os.getpid(), now, self.stale_after, accept=self._fits)
            if job is not None:
                self._launch(job)
            elif self._slots:  # a job that ends may let one start (a study it resumed needs less time)
                self._wait(self.poll)
            elif self.poll is not None:
                self._stop.wait(self.poll if self.end is None else max(0.0, min(self.poll, self.end - time.time())))
            else:
                return "nothing left fits the window" if self.summary.left else "the queue is empty"

    def _wait(self, poll: float | None = None) -> None:
        """Until a slot ends, a signal comes or ``poll`` seconds pass (the store is not read meanwhile)."""
        deadline = None if poll is None else time.monotonic() + poll
        while not self._wake.wait(0.2):
            if self._stop.is_set() or self._errors or (deadline is not None and time.monotonic() >= deadline):
                break
        self._wake.clear()  # before _reap reads _ended: a slot ending after this sets it again

    def _reap(self) -> None:
        with self._lock:
            ended, self._ended_ids = self._ended_ids, []
        for job_id in ended:
            self._slots.pop(job_id, None)

    def _fits(self, job: JobRecord) -> bool:
        """Whether ``job`` can finish in the window's time left (its estimate read afresh); a job that
        cannot is left queued with the reason."""
        if job.id in self._slots or (job.state is JobState.RUNNING and job.runner == self.id):
            return False  # running in a slot of this runner, its heartbeat only late: never claimed (or requeued) again
        left = None if self.end is None else self.end - time.time()
        if left is not None and left <= 0:
            return False  # the window ended while this job was being claimed: no job starts after it
        expected = estimate(self.store, job)
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
        self.summary.titles[job.id] = job.title
        self.store.note_job(job.id, reason, expected)
        return False

    def _launch(self, job: JobRecord) -> None:
        """Start a claimed job in a slot of its own (a refused one is failed here, and nothing runs)."""
        self.summary.titles[job.id] = job.title
        self.summary.left.pop(job.id, None)
        why = refusal(job.kind, job.args, job.files, job.signature)
        if why is not None:
            if self.store.finish_job(job.id, self.id, JobState.FAILED, None, None, reason=why):
                self._ended(job, JobState.FAILED, why)
                self.say(f"job {job.id} ({job.title}) {why}")
                self._notify_failed(job, None, why, "")
            return
        if self._stop.is_set():  # Ctrl-C as it was claimed: back in its place, not started
            self.store.finish_job(job.id, self.id, JobState.QUEUED, None, None,
                                  reason="interrupted: its runner was stopped; the next tuneloop queue run resumes it")
            return
        with self._lock:
            gpu = None if self._free_gpus is None else self._free_gpus.pop(0)
        again = f", resuming after its runner stopped (attempt {job.attempts})" if job.attempts > 1 else ""
        on = "" if gpu is None else f" on GPU {gpu}"
        self.say(f"job {job.id} ({job.title}) started{on}{again}")
        thread = threading.Thread(target=self._slot, args=(job, gpu), name=f"queue-job-{job.id}", daemon=True)
        self._slots[job.id] = thread  # before it starts: its end may come before the next line
        try:
            thread.start()
        except BaseException:  # no thread (the process's thread limit): no slot, its GPU back, its job queued again
            del self._slots[job.id]
            with self._lock:
                if gpu is not None and self._free_gpus is not None:
                    self._free_gpus.append(gpu)
            self.store.finish_job(job.id, self.id, JobState.QUEUED, None, None,
                                  reason="interrupted: its runner could not start it; the next tuneloop queue run "
                                         "resumes it")
            raise

    def _slot(self, job: JobRecord, gpu: str | None) -> None:
        """A slot's thread: run the job to its end and record it; an error is handed to run()."""
        began = time.monotonic()
        try:
            state, code, tail = self._run_child(job, gpu)
            if code is not None:  # else not ours any more: the runner that took it over records it
                last = next((line.strip() for line in reversed(tail.splitlines()) if line.strip()), "")
                reason = None if state is JobState.DONE else f"exit code {code}" + (f": {last[:200]}" if last else "")
                self._record(job, state, code, tail, reason)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which stops the others
            self._errors.append(exc)
        finally:
            with self._lock:
                self.summary.busy_s += time.monotonic() - began
                if gpu is not None and self._free_gpus is not None:
                    self._free_gpus.append(gpu)
                self._ended_ids.append(job.id)
            self._wake.set()

    def _ended(self, job: JobRecord, state: JobState, reason: str | None) -> None:
        self.summary.ran.append((job.id, state))
        if state is JobState.FAILED and reason is not None:
            self.summary.reasons[job.id] = reason

    def _record(self, job: JobRecord, state: JobState, code: int | None, tail: str, reason: str | None) -> bool:
        """Record how the job ended, and say so; nothing is said to be done that was not recorded."""
        if not self.store.finish_job(job.id, self.id, state, code, tail, reason=reason):
            self.say(f"job {job.id} ({job.title}) ended ({state}), but another runner had taken it over: that "
                     f"runner records it")
            return False
        self._ended(job, state, reason)
        self.say(f"job {job.id} ({job.title}) {state}" + ("" if reason is None else f": {reason}"))
        if state is JobState.FAILED:
            self._notify_failed(job, code, reason, tail)
        return True

    def _notify_failed(self, job: JobRecord, code: int | None, reason: str | None, tail: str) -> None:
        self.notifier.send(*failure_message(job.id, job.title, code, reason, tail))

    def _notify_end(self) -> None:
        """The summary, once the failures' messages are out; never raises."""
        if not self.notifier.channels:
            return
        try:
            queued = [(j.id, j.title, j.reason, j.paused) for j in self.store.jobs([JobState.QUEUED])]
        except Exception:  # noqa: BLE001 - the store failing is what stopped it, maybe: what this runner knows
            queued = [(i, self.summary.titles.get(i, ""), r, False) for i, r in self.summary.left.items()]
        self.notifier.close(summary_message(self.summary, queued, duration))

    def _run_child(self, job: JobRecord, gpu: str | None) -> tuple[JobState, int | None, str]:
        """Run the job's command to its end, heartbeating; (state, exit code, the tail of its output);
        exit code None when another runner took the job over.

        The child runs in a process group of its own, so stopping it reaches its trial workers too.
        Ctrl-C and SIGTERM (caught in the main thread) only ask it to stop: the first stops the job
        (SIGINT to its group, SIGKILL after ``_GRACE`` s), a second kills the group at once; no further
        signal can leave the child running or the row held by this runner. The job is then recorded (done
        when the child still exited 0, else queued again) in ``summary.interrupted`` too."""
        # pinned: the child (and its workers) imports each file only with the content refusal() just hashed
        env = pinned_env(job.files, {**{k: v for k, v in os.environ.items() if k not in SECRETS},
                                     "TUNELOOP_STORAGE": self.store.url, "PYTHONSAFEPATH": "1"})
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpu
        # one line per message in the tail (the reason is its last line): the child writes to a pipe, not to
        # this terminal, and Rich would wrap at $COLUMNS (80 when unset)
        env["COLUMNS"] = "200"
        if self.workers > 1 and "OMP_NUM_THREADS" not in os.environ:
            # jobs side by side share the cores: each gets its part rather than all of them (torch's
            # threads spin while they wait: two jobs of two threads on two cores ran 4-10x slower)
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // self.workers))
        tail: collections.deque[str] = collections.deque()
        size = [0]
        prefix = "" if self.workers == 1 else f"[job {job.id}] "
        # started from this slot's thread, which outlives the child: the parent-death signal (set in
        # _child_setup) fires when the thread that forked the child ends, not only its process
        child = subprocess.Popen(command(job.kind, job.args), env=env, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                                 start_new_session=True,  # its own process group (and no terminal)
                                 preexec_fn=functools.partial(_child_setup, os.getpid()))  # signals only
        reader = threading.Thread(target=self._read, args=(child, tail, size, prefix), daemon=True)
        reader.start()
        status, error = "stopped", None
        try:
            status = self._watch(job, child)
        except BaseException as exc:  # noqa: BLE001 - re-raised below, once the child is stopped
            error = exc
        if status == "stopped":
            self.say(f"job {job.id} ({job.title}): stopping it (Ctrl-C again or SIGTERM to kill it now)")
        _stop(child, self._hurry)  # after its end too: whatever of its group outlived it
        reader.join(timeout=5)  # EOF once every holder of the pipe is gone; a daemon thread otherwise
        if not reader.is_alive() and child.stdout is not None:
            child.stdout.close()  # never while the reader blocks on it: closing would wait for it
        text, code = "".join(tail), child.returncode
        if status == "lost":
            return JobState.FAILED, None, text
        if status == "exited":
            state = JobState.DONE if code == 0 else JobState.FAILED
            if self._stop.is_set():  # it ended on its own as the runner was being stopped
                self.summary.interrupted[job.id] = state
            return state, code, text
        if code == 0:  # it finished as it was being stopped
            recorded = self._record(job, JobState.DONE, code, text, None)
        else:
            recorded = self._record(job, JobState.QUEUED, None, text,
                                    "interrupted: its runner was stopped; the next tuneloop queue run resumes it")
        if recorded:
            self.summary.interrupted[job.id] = JobState.DONE if code == 0 else JobState.QUEUED
        if error is not None:
            raise error
        return JobState.QUEUED, None, text  # recorded already

    def _watch(self, job: JobRecord, child: subprocess.Popen[str]) -> str:
        """Wait for the child, renewing the heartbeat: ``exited``; ``stopped`` (Ctrl-C, SIGTERM, or another
        job's error); ``lost`` (another runner took the job over: it judged this runner dead). A heartbeat
        the store cannot take (busy or unreachable past its retries) leaves the child running and is tried again."""
        beat = max(0.2, min(5.0, self.stale_after / 4))
        due = time.monotonic() + beat
        while not self._stop.is_set():
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

    def _read(self, child: subprocess.Popen[str], tail: collections.deque[str], size: list[int],
              prefix: str = "") -> None:
        """Echo the child's output line by line (``prefix`` first), keeping its last ``TAIL_CHARS`` characters."""
        assert child.stdout is not None
        echo: Callable[[str], None] | None = self.echo
        try:
            for line in child.stdout:
                if echo is not None:
                    try:
                        echo(prefix + plain(line.rstrip("\n")))
                    except (OSError, ValueError):  # the terminal gone: read on (a full pipe would block the child)
                        echo = None
                tail.append(line)
                size[0] += len(line)
                while size[0] > TAIL_CHARS and len(tail) > 1:
                    size[0] -= len(tail.popleft())
        except (OSError, ValueError):
            pass  # closed under it


_GRACE = 30.0  # seconds a stopped job has to stop on SIGINT before its group is killed


def _catch_stops(stop: threading.Event, hurry: threading.Event) -> Callable[[], None]:
    """While the runner runs: SIGINT and SIGTERM set ``stop`` (the second one ``hurry``) instead of
    raising, so no signal lands in the middle of claiming or stopping a job. Returns what restores the handlers.
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
