"""The population executor: up to M trials at once, their ``fit`` calls trained as one population.

Each trial function runs in its own thread of the driver's process, unchanged. When it calls
``tuneloop.torch.fit`` the call parks; once every running trial has parked in ``fit`` or
returned, the parked calls train together (:func:`tuneloop.torch.fit_population`, on the main
thread, with all cores), and each trial goes on with its own ``FitResult``. A trial that calls
``fit`` several times (cross-validation) takes part in several populations. A trial function
that never calls ``fit`` still runs (in its thread), just without the speed-up.

To the driver and the store every member is an ordinary trial: the same reports (so
schedulers stop members), checkpoints, metrics and rows.

With ``gpus`` each bucket of members (equal architecture, optimizer, batch size and data) trains on
one of those GPUs, dealt round-robin, and each member records that device. Buckets still train one
after another: training two at once in this process would race on torch's global random generator,
under which each member's model is built, and share one interpreter lock; on a Ray cluster
(``address``, ``gpus_per_bucket``) buckets train side by side, each in a task of its own.
Members share this process, so no system metrics are sampled per member.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tuneloop._validation import check_positive_int
from tuneloop.errors import ConfigError
from tuneloop.run._executor import InProcessExecutor, executors
from tuneloop.run._system import run_watched
from tuneloop.run.events import Event, Failed, TrialSpec


class _HandlerError(BaseException):
    """The driver's handler failed while the engine reported for a member: not the member's error (the
    engine fails a member for any ``Exception``), so it travels as a BaseException to :meth:`poll`,
    which raises the original."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(eq=False)
class _Call:
    """A parked ``fit`` call of one trial thread."""

    trial: Any
    kwargs: dict[str, Any]
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None


@dataclass(eq=False)
class _Message:
    """A report or event from a trial thread, answered by the main thread."""

    event: Event
    done: threading.Event = field(default_factory=threading.Event)
    reply: Any = None


class _Session:
    """One batch of trials: their threads, their parked ``fit`` calls, their messages."""

    def __init__(self, executor: PopulationExecutor, specs: list[TrialSpec]) -> None:
        self.executor, self.specs = executor, specs
        self.main = threading.get_ident()
        self.cond = threading.Condition()
        self.calls: list[_Call] = []
        self.messages: queue.Queue[_Message] = queue.Queue()
        self.ended: dict[int, Event] = {}
        self.aborted = False

    # -- trial threads --------------------------------------------------------------------
    def thread_main(self, spec: TrialSpec) -> None:
        from tuneloop.torch._session import set_session

        set_session(self)
        try:
            event = run_watched(self.executor.fn, spec, self.executor, sample=False)  # members share the process
        except BaseException as exc:  # noqa: BLE001 - nothing a trial raises may leave the batch waiting
            event = Failed(spec.trial_id, f"{type(exc).__name__}: the trial function stopped its thread ({exc}); "
                                          f"return or raise an exception instead.")
        finally:
            set_session(None)
        with self.cond:
            self.ended[spec.trial_id] = event
            self.cond.notify_all()

    def fit(self, trial: Any, kwargs: dict[str, Any]) -> Any:
        """Called by ``fit`` in a trial thread: park until the population has trained this call."""
        call = _Call(trial, kwargs)
        with self.cond:
            self.calls.append(call)
            self.cond.notify_all()
        call.done.wait()
        if isinstance(call.result, BaseException):
            raise call.result
        return call.result

    def ask(self, event: Event) -> Any:
        """Called from a trial thread: the main thread handles ``event`` and replies."""
        if self.aborted:
            raise RuntimeError("The study run was interrupted.")
        message = _Message(event)
        self.messages.put(message)
        with self.cond:
            self.cond.notify_all()
        message.done.wait()
        return message.reply

    # -- the main thread ------------------------------------------------------------------
    def run(self) -> None:
        threads = [threading.Thread(target=self.thread_main, args=(spec,), daemon=True, name=f"tuneloop-trial-{spec.number}")
                   for spec in self.specs]
        for t in threads:
            t.start()
        try:
            while True:
                self._answer()
                with self.cond:
                    ended = len(self.ended)
                    parked = len(self.calls)
                    if ended == len(self.specs):
                        break
                    if parked == 0 or parked + ended < len(self.specs) or not self.messages.empty():
                        self.cond.wait(0.05)
                        continue
                    calls, self.calls = self.calls, []
                results = self.executor.train([c.kwargs for c in calls], [c.trial for c in calls])
                for call, result in zip(calls, results):
                    call.result = result
                    call.done.set()
            self._answer()
        except BaseException:
            self.abort()
            raise
        for spec in self.specs:
            self.executor.handler(self.ended[spec.trial_id])

    def _answer(self) -> None:
        while True:
            try:
                message = self.messages.get_nowait()
            except queue.Empty:
                return
            try:
                message.reply = self.executor.handler(message.event)
            finally:
                message.done.set()

    def abort(self) -> None:
        """Interrupted: wake every parked thread with an error so none waits forever."""
        self.aborted = True
        with self.cond:
            calls, self.calls = self.calls, []
        for call in calls:
            call.result = RuntimeError("The study run was interrupted.")
            call.done.set()
        while not self.messages.empty():
            message = self.messages.get_nowait()
            message.reply = True
            message.done.set()


class PopulationExecutor(InProcessExecutor):
    """Run up to ``members`` trials together; their ``fit`` calls train as one population.
    ``exact=True`` draws dropout masks as sequential ``fit`` does (see ``fit_population``).

    With ``address`` (a Ray cluster, or "local") each bucket of equal shape trains as a Ray task
    of its own with ``cpus_per_bucket`` CPUs and ``gpus_per_bucket`` GPUs, buckets side by side
    on the cluster, members still reporting to this driver as they train."""

    def __init__(self, members: int = 64, *, address: str | None = None, cpus_per_bucket: float = 1.0,
                 gpus_per_bucket: float = 0.0, gpus: Sequence[int] | None = None, exact: bool = False) -> None:
        super().__init__()
        self.members = check_positive_int(members, "members", "the population executor")
        if not isinstance(exact, bool):
            raise ConfigError(f"exact takes True or False (got {exact!r}): True draws dropout masks as sequential "
                              f"fit does, False (the default) the faster batched way.")
        self.exact = exact
        self._queue: list[TrialSpec] = []
        self._session: _Session | None = None
        self._ray: Any = None
        self.gpus: list[int] = []
        self._dealt = 0  # buckets dealt to GPUs so far: the next one goes to the next GPU
        if gpus:
            from tuneloop.run._gpus import check_gpus, resolve

            if address is not None:
                raise ConfigError("On a Ray cluster (address) each bucket reserves gpus_per_bucket (--gpus-per-trial) "
                                  "GPUs there; drop gpus (--gpus).")
            self.gpus = check_gpus(gpus, "the population executor")
            resolve(self.gpus)  # past the visible GPUs: the one-line error now
        if address is not None:
            from tuneloop.run._ray import RayBuckets

            self._ray = RayBuckets(address, cpus_per_bucket, gpus_per_bucket)

    def train(self, jobs: list[dict[str, Any]], trials: list[Any]) -> list[Any]:
        """Train parked fit calls: here, bucket by bucket on the GPUs, or as Ray tasks."""
        if self._ray is not None:
            return self._ray.train(jobs, trials, self.handler, self.members)
        from tuneloop.torch._population import run_jobs

        if not self.gpus:
            return run_jobs(jobs, trials, max_members=self.members, exact=self.exact)
        return self._on_gpus(jobs, trials)

    def _on_gpus(self, jobs: list[dict[str, Any]], trials: list[Any]) -> list[Any]:
        """Each bucket on the next GPU (members whose fit call names a device keep it)."""
        from tuneloop.run._gpus import gpu_label
        from tuneloop.torch._population import bucket_groups, run_jobs

        results: list[Any] = [None] * len(jobs)
        keyed = [job if job.get("device") is not None else {**job, "device": "cpu"} for job in jobs]  # keys, not copies
        for group in bucket_groups(keyed):
            gpu = self.gpus[self._dealt % len(self.gpus)]
            self._dealt += 1
            placed = [jobs[i] if jobs[i].get("device") is not None else {**jobs[i], "device": f"cuda:{gpu}"}
                      for i in group]
            for i, job in zip(group, placed):
                if trials[i] is not None:
                    ours = job["device"] == f"cuda:{gpu}"
                    trials[i].set_attr("device", gpu_label(gpu) if ours else str(job["device"]))
            for i, result in zip(group, run_jobs(placed, [trials[i] for i in group], max_members=self.members,
                                                          exact=self.exact)):
                results[i] = result
        return results

    @property
    def free_slots(self) -> int:
        return self.members - len(self._queue)

    @property
    def running(self) -> int:
        return len(self._queue)

    def submit(self, spec: TrialSpec) -> None:
        self._queue.append(spec)

    def poll(self, timeout: float) -> int:
        """Run every submitted trial to its end (a batch), delivering events on this thread."""
        if not self._queue:
            return 0
        specs = self._queue
        self._session = _Session(self, specs)
        try:
            self._session.run()
        except _HandlerError as failure:
            raise failure.error from None
        finally:
            self._queue, self._session = [], None
            for spec in specs:
                self.forget(spec.trial_id)
        return len(specs)

    # -- the Channel trials talk through ----------------------------------------------------
    def deliver(self, event: Event) -> Any:
        """Events of trial threads are handled on the main thread, which owns the driver. An error of
        the handler there (a callback's, the store's) is the run's, as under any executor: it passes
        the engine (which fails a member for its own errors) as a :class:`_HandlerError`."""
        session = self._session
        if session is None or threading.get_ident() == session.main:
            try:
                return self.handler(event)
            except Exception as exc:
                if session is None:
                    raise
                raise _HandlerError(exc) from exc
        return session.ask(event)

    def cancel(self, trial_id: int) -> None:
        super().cancel(trial_id)
        if self._ray is not None:  # members training in a Ray task read their stop requests there
            self._ray.cancel(trial_id)

    def shutdown(self, *, kill: bool = False) -> None:
        if self._session is not None:
            self._session.abort()
        if self._ray is not None:
            self._ray.shutdown()


@executors.register("population", PopulationExecutor)
def _make_population(options: dict[str, Any], **_: Any) -> PopulationExecutor:
    return PopulationExecutor(**options)
