"""The worker process: receives trial specs over a pipe, runs them, sends events back.

Messages to the worker: ("run", TrialSpec), ("stop", trial_id), ("exit",).
Messages from it: Report (then it waits for ("decision", stop)), any other event (Attrs with its
device and host first, Scalars of system samples from its sampler thread, whatever the trial logs),
then Finished or Failed.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import threading
from multiprocessing.connection import Connection
from typing import Any

from tuneloop.run._system import run_watched
from tuneloop.run.events import Channel, Event, Failed, Report, TrialSpec


class _Exit(BaseException):
    """The driver asked this worker to exit (not a SystemExit, which a trial function may raise)."""


class _PipeChannel(Channel):
    """A Trial's way back to the driver through the worker's pipe."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.stops: set[int] = set()
        self._lock = threading.Lock()  # Connection.send is not thread-safe: the trial and its sampler share it

    def send_from_any_thread(self, message: Any) -> None:
        """Send ``message`` to the driver, from the trial's thread or its system sampler's."""
        with self._lock:
            self.conn.send(message)

    def report(self, spec: TrialSpec, step: int, metrics: dict[str, float]) -> bool:
        self.send_from_any_thread(Report(spec.trial_id, step, metrics))
        while True:  # other messages may arrive before the verdict (a stop request)
            msg = self.conn.recv()
            if msg[0] == "decision":
                return bool(msg[1]) or spec.trial_id in self.stops
            self._control(msg)

    def emit(self, spec: TrialSpec, event: Event) -> None:
        self.send_from_any_thread(event)

    def stop_requested(self, spec: TrialSpec) -> bool:
        while self.conn.poll():  # only control messages can be waiting while a trial runs
            self._control(self.conn.recv())
        return spec.trial_id in self.stops

    def _control(self, msg: tuple[Any, ...]) -> None:
        if msg[0] == "stop":
            self.stops.add(msg[1])
        elif msg[0] == "exit":
            raise _Exit


def limit_threads(threads: int) -> None:
    """Keep N workers from oversubscribing the cores (each torch would take them all)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def pickled(fn: Any, where: str) -> bytes:
    """The trial function as bytes for another process (by reference: workers import it)."""
    try:
        return pickle.dumps(fn)
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        from tuneloop.errors import ConfigError

        raise ConfigError(
            f"The trial function cannot be sent to {where} ({exc}). Define it at the top level of a module or "
            f"experiment file (not as a lambda or a nested function), or use executor='inline'."
        ) from exc


def loads_in_workers(fn: Any) -> bool:
    """Whether worker processes surely load ``fn``: it pickles by reference from a module with a file
    (an experiment file ``tuneloop run`` loaded, a package). Not from ``__main__``: a notebook's cannot
    be imported at all, and a script's is run again in each worker (a ``study.run`` outside an
    ``if __name__ == "__main__":`` block would start workers from a worker)."""
    try:
        pickle.dumps(fn)
    except Exception:  # noqa: BLE001 - lambdas, closures, anything pickle refuses
        return False
    name = getattr(fn, "__module__", None) or "__main__"
    return name not in ("__main__", "__mp_main__") and getattr(sys.modules.get(name), "__file__", None) is not None


def load_function(fn_blob: bytes, experiment_path: str | None) -> Any:
    """The trial function in a worker: import the experiment file it came from, then unpickle it."""
    if experiment_path:
        from tuneloop._load import load_module

        load_module(experiment_path)
    return pickle.loads(fn_blob)


def main(conn: Connection, fn_blob: bytes, experiment_path: str | None, threads: int, every: float | None = None,
         pin: str | None = None) -> None:
    """Entry point of a worker process: ``every`` seconds between system samples (None: off), ``pin``
    the CUDA_VISIBLE_DEVICES of its GPU slot (None: the driver's devices)."""
    # Ctrl-C reaches the whole process group; the driver alone decides what happens then.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if pin is not None:  # set at its start already (spawn, fork); again for start methods that do not pass it on
        os.environ["CUDA_VISIBLE_DEVICES"] = pin
    limit_threads(threads)
    fn: Any = None
    load_error = ""
    try:
        fn = load_function(fn_blob, experiment_path)
    except Exception as exc:  # noqa: BLE001 - every trial sent here reports it instead
        load_error = (
            f"WorkerSetup: a worker process could not load the trial function ({type(exc).__name__}: {exc}). "
            f"Define it in an importable module or an experiment file run with `tuneloop run` (not in a "
            f"notebook or as a closure), or use executor='inline'."
        )
    limit_threads(threads)  # again, in case the experiment imported torch
    channel = _PipeChannel(conn)
    try:
        while True:
            msg = conn.recv()
            if msg[0] == "exit":
                return
            if msg[0] == "stop":
                continue  # a stop for a trial that already ended
            spec: TrialSpec = msg[1]
            if load_error:
                channel.send_from_any_thread(Failed(spec.trial_id, load_error))
                continue
            channel.stops.clear()
            channel.send_from_any_thread(run_watched(fn, spec, channel, every=every))
    except (EOFError, BrokenPipeError, _Exit):
        return  # the driver is gone, interrupting or done: nothing left to report to
