"""The processes executor: N long-lived worker processes, events streamed over pipes.

Workers are started with the ``spawn`` method (fork is unsafe once torch has started its
thread pools) and each gets ``cores // workers`` threads. A worker that dies mid-trial sends the
driver a retryable failure with the exit code as its cause (the driver runs the trial again up
to ``max_retries`` times, then fails it), and a fresh worker replaces it.

With ``gpus`` each worker slot is pinned to one GPU: its process starts with that GPU's
``CUDA_VISIBLE_DEVICES`` (so its torch sees that GPU alone, as ``cuda:0``), ``trials_per_gpu``
slots per GPU, and a worker that replaces a dead one keeps its slot's GPU (run/_gpus.py).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from tuneloop._validation import check_positive_int
from tuneloop.errors import ConfigError
from tuneloop.run._executor import Executor, executors
from tuneloop.run._gpus import check_gpus, check_packed, pin_slots, pinned_environment, resolve, visible_gpus
from tuneloop.run._system import system_every as _system_every
from tuneloop.run._worker import main as worker_main
from tuneloop.run._worker import pickled
from tuneloop.run.events import Failed, Finished, Report, TrialSpec


@dataclass(eq=False)
class _Worker:
    process: Any
    conn: Connection
    slot: int
    spec: TrialSpec | None = None
    spoke: bool = False  # it sent an event: it started and ran (part of) a trial


class ProcessesExecutor(Executor):
    """Run trials in ``workers`` separate processes, several at once.

    ``gpus`` (indices of the visible GPUs, as torch numbers them) pins each worker to one of them:
    ``trials_per_gpu`` workers on each (``workers`` then defaults to ``len(gpus) * trials_per_gpu``),
    or ``workers`` dealt round-robin over them. ``system_every``: seconds between samples of each
    trial's CPU, memory and GPU (default ``$TUNELOOP_SYSTEM_EVERY`` or 5; 0 turns them off)."""

    def __init__(self, workers: int | None = None, *, start_method: str = "spawn",
                 threads_per_worker: int | None = None, gpus: Sequence[int] | None = None,
                 trials_per_gpu: int | None = None, system_every: float | None = None) -> None:
        owner = "the processes executor"
        if trials_per_gpu is not None:
            check_positive_int(trials_per_gpu, "trials_per_gpu", owner)
            if gpus is None:
                gpus = list(range(len(visible_gpus())))
        if workers is not None:
            check_positive_int(workers, "workers", owner)
        self.pins: list[str | None] = []  # the CUDA_VISIBLE_DEVICES of each worker slot (None: the driver's)
        if gpus:
            entries = resolve(check_gpus(gpus, owner))
            check_packed(workers, len(entries), trials_per_gpu)
            self.pins = list(pin_slots(entries, range(len(entries)), trials_per_gpu, workers))
        elif trials_per_gpu is not None:
            resolve([0], f"trials_per_gpu={trials_per_gpu} (--trials-per-gpu {trials_per_gpu})")  # no GPU: says so
        self.n_workers = len(self.pins) or workers or 2
        self.pins = self.pins or [None] * self.n_workers
        self.every = _system_every(system_every)
        self._ctx: Any = mp.get_context(start_method)
        self._threads = threads_per_worker or max(1, (os.cpu_count() or 1) // self.n_workers)
        self._workers: list[_Worker] = []
        self._silent_deaths = 0  # workers in a row that died without a word, while none ever spoke
        self._heard = False  # some worker of this run sent an event

    def start(self, fn: Any, handler: Any, *, experiment_path: str | None = None) -> None:
        super().start(fn, handler, experiment_path=experiment_path)
        self._fn_blob = pickled(fn, "worker processes")
        self._workers = [self._spawn(slot) for slot in range(self.n_workers)]

    def _spawn(self, slot: int) -> _Worker:
        parent, child = self._ctx.Pipe()
        pin = self.pins[slot]
        process = self._ctx.Process(
            target=worker_main,
            args=(child, self._fn_blob, self.experiment_path, self._threads, self.every, pin),
            daemon=True,
            name=f"tuneloop-worker-{slot}",
        )
        with pinned_environment(pin):  # the child starts with its GPU's CUDA_VISIBLE_DEVICES
            process.start()
        child.close()
        return _Worker(process, parent, slot)

    @property
    def free_slots(self) -> int:
        return sum(w.spec is None for w in self._workers)

    @property
    def running(self) -> int:
        return sum(w.spec is not None for w in self._workers)

    def submit(self, spec: TrialSpec) -> None:
        worker = next(w for w in self._workers if w.spec is None)
        worker.spec = spec
        try:
            worker.conn.send(("run", spec))
        except (BrokenPipeError, OSError):
            pass  # the death is noticed by poll, which fails the trial and replaces the worker

    def cancel(self, trial_id: int) -> None:
        for w in self._workers:
            if w.spec is not None and w.spec.trial_id == trial_id:
                try:
                    w.conn.send(("stop", trial_id))
                except (BrokenPipeError, OSError):
                    pass

    def poll(self, timeout: float) -> int:
        by_conn: dict[Any, _Worker] = {w.conn: w for w in self._workers}
        by_sentinel: dict[Any, _Worker] = {w.process.sentinel: w for w in self._workers}
        ready = wait(list(by_conn) + list(by_sentinel), timeout)
        handled, drained = 0, set()
        for obj in ready:  # a dead worker is ready twice: its pipe (EOF) and its sentinel
            worker = by_conn.get(obj) or by_sentinel[obj]
            if id(worker) not in drained:
                drained.add(id(worker))
                handled += self._drain(worker)
        return handled

    def _drain(self, worker: _Worker) -> int:
        handled = 0
        try:
            while worker.conn.poll():
                event = worker.conn.recv()
                handled += 1
                worker.spoke = self._heard = True
                stop = self.handler(event)  # may call cancel, which sends the worker ("stop", id)
                if isinstance(event, Report):
                    worker.conn.send(("decision", bool(stop)))
                elif isinstance(event, (Finished, Failed)):
                    worker.spec = None
        except (EOFError, BrokenPipeError, ConnectionResetError, OSError):
            pass
        if not worker.process.is_alive():
            handled += self._replace(worker)
        return handled

    def _replace(self, worker: _Worker) -> int:
        """A worker died: fail its trial with the cause, start a new worker in its place."""
        worker.process.join(timeout=1)
        code = worker.process.exitcode
        spec, worker.spec = worker.spec, None
        worker.conn.close()
        index = next(i for i, w in enumerate(self._workers) if w is worker)
        self._workers[index] = self._spawn(worker.slot)  # on the same GPU as the one it replaces
        if spec is None:
            return 0
        cause = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        if not worker.spoke and not self._heard:
            self._silent_deaths += 1
        if self._silent_deaths >= 2 * self.n_workers:  # no worker ever starts: trying on would fail every trial
            self.handler(Failed(spec.trial_id, self._never_start(cause), retryable=False))
            raise ConfigError(self._never_start(cause))
        self.handler(Failed(
            spec.trial_id,
            f"WorkerDied: the worker process running this trial died ({cause}), e.g. killed or out of "
            f"memory; lower the batch size or the number of workers if memory is short.",
            retryable=True,
        ))
        return 1

    def _never_start(self, cause: str) -> str:
        """Why the run ends when worker processes die before their first word, again and again."""
        main = sys.modules.get("__main__")
        script = getattr(main, "__file__", None) if self._ctx.get_start_method() != "fork" else None
        script = script if isinstance(script, str) and script.endswith(".py") else None  # not the tuneloop command
        hint = (f"each worker imports {os.path.basename(script)} again: put the code that starts the study under "
                f"`if __name__ == \"__main__\":`, or" if script else "their error is printed above;")
        return (f"WorkerSetup: {self._silent_deaths} worker processes in a row died before running a trial "
                f"({cause}); {hint} run with executor='inline' (--workers 1) to see the error in this process.")

    def shutdown(self, *, kill: bool = False) -> None:
        for w in self._workers:
            try:
                if kill:
                    w.process.kill()
                else:
                    w.conn.send(("exit",))
            except (BrokenPipeError, OSError):
                pass
        for w in self._workers:
            w.process.join(timeout=5 if kill else 30)
            if w.process.is_alive():
                w.process.kill()
                w.process.join()
            w.conn.close()
        self._workers = []


@executors.register("processes", ProcessesExecutor)
def _make_processes(options: dict[str, Any], workers: int = 2, **_: Any) -> ProcessesExecutor:
    if "workers" not in options and (options.get("gpus") or options.get("trials_per_gpu")):
        return ProcessesExecutor(**options)  # the GPUs decide how many workers
    return ProcessesExecutor(**{"workers": workers, **options})
