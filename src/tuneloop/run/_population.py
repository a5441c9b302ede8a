"""The population executor: up to M trials at once, their ``fit`` calls trained as one population.

Each trial function runs in its own thread of the driver's process, unchanged. When it calls
``tuneloop.torch.fit`` the call parks; once every running trial has parked in ``fit`` or
returned, the parked calls train together (:func:`tuneloop.torch.fit_population`, on a trainer
thread with all cores), and each trial goes on with its own ``FitResult``. A trial that calls
``fit`` several times (cross-validation) takes part in several populations. A trial function
that never calls ``fit`` still runs (in its thread), just without the speed-up.

The population rolls: a member that leaves (its last epoch, early stopping, a scheduler's verdict)
gets its result at once, its trial ends, and the driver starts new trials in the freed slots; at
the population's next epoch boundary their parked ``fit`` calls join it, where their models fit
its blocks (:func:`tuneloop.torch._population.run_jobs`, ``refill``), or train in the next one.
Every handshake happens at quiet moments (no trial thread running user code), so a seeded study
proposes, trains and records the same trials on every run.

To the driver and the store every member is an ordinary trial: the same reports (so
schedulers stop members), checkpoints, metrics and rows. Events of trial threads and of the
trainer reach the driver on the main thread: reports wait for the driver's verdict, the rest are
queued in order.

With ``gpus`` each bucket of members (equal architecture, optimizer, batch size and data) trains on
one of those GPUs, dealt round-robin (refilled calls too), and each member records that device.
Populations on every GPU train in turn from the one trainer thread, an epoch each: training two at
once in this process would race on torch's global random generator, under which each member's
model is built, and share one interpreter lock; on a Ray cluster (``address``,
``gpus_per_bucket``) buckets train side by side, each in a task of its own (without refills).
Members share this process, so no system metrics are sampled per member.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tuneloop._validation import check_positive_int
from tuneloop.errors import ConfigError
from tuneloop.run._executor import InProcessExecutor, executors
from tuneloop.run._system import run_watched
from tuneloop.run.events import Event, Failed, Report, TrialSpec

INTERRUPTED = "The study run was interrupted."


@dataclass(eq=False)
class _Call:
    """A parked ``fit`` call of one trial thread."""

    trial_id: int
    number: int
    trial: Any
    kwargs: dict[str, Any]
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None


@dataclass(eq=False)
class _Message:
    """A report from a thread that waits for the driver's verdict, or another event (no wait)."""

    event: Event
    done: threading.Event | None = None
    reply: Any = None


@dataclass(eq=False)
class _Request:
    """The trainer asks for ``free`` new fit calls at an epoch boundary. First the trials that ended
    are handed to the driver (which starts new trials in their slots); once none is left at a quiet
    moment, the parked calls are handed over."""

    free: int
    calls: list[_Call] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)


class _Session:
    """The trials of one study run: their threads, parked ``fit`` calls, messages, and the trainer.

    Trial states: running (in user code), parked (in ``fit``, waiting for a population), training
    (its call taken by the trainer), ended (its end event not yet handed to the driver). The main
    thread acts only when it is quiet (no trial running): it hands ended trials to the driver,
    starts the trainer on the parked calls, or answers the trainer's refill request."""

    def __init__(self, executor: PopulationExecutor) -> None:
        self.executor = executor
        self.main = threading.get_ident()
        self.cond = threading.Condition()
        self.live: dict[int, TrialSpec] = {}  # submitted and not yet handed back to the driver as ended
        self.running: set[int] = set()
        self.parked: dict[int, _Call] = {}
        self.ended: dict[int, Event] = {}
        self.messages: queue.Queue[_Message] = queue.Queue()
        self.trainer: threading.Thread | None = None
        self.request: _Request | None = None
        self.stop = threading.Event()  # set on abort: the trainer ends at its next step
        self.training: list[_Call] = []  # the calls the trainer holds: every one gets a result
        self.local = threading.local()

    # -- trial threads --------------------------------------------------------------------
    def start_trial(self, spec: TrialSpec) -> None:
        with self.cond:
            self.live[spec.trial_id] = spec
            self.running.add(spec.trial_id)
        threading.Thread(target=self._trial_main, args=(spec,), daemon=True,
                         name=f"tuneloop-trial-{spec.number}").start()

    def _trial_main(self, spec: TrialSpec) -> None:
        from tuneloop.torch._session import set_session

        set_session(self)
        self.local.spec = spec
        try:
            event = run_watched(self.executor.fn, spec, self.executor, sample=False)  # members share the process
        except BaseException as exc:  # noqa: BLE001 - nothing a trial raises may leave the run waiting
            event = Failed(spec.trial_id, f"{type(exc).__name__}: the trial function stopped its thread ({exc}); "
                                          f"return or raise an exception instead.")
        finally:
            set_session(None)
        with self.cond:
            self.running.discard(spec.trial_id)
            self.ended[spec.trial_id] = event
            self.cond.notify_all()

    def fit(self, trial: Any, kwargs: dict[str, Any]) -> Any:
        """Called by ``fit`` in a trial thread: park until a population has trained this call."""
        spec: TrialSpec | None = getattr(self.local, "spec", None)
        if spec is None:
            raise RuntimeError("fit was called by the population's own trainer (from a model function or a "
                               "callback); call fit from the trial function only.")
        call = _Call(spec.trial_id, spec.number, trial, kwargs)
        with self.cond:
            if self.stop.is_set():
                raise RuntimeError(INTERRUPTED)
            self.running.discard(spec.trial_id)
            self.parked[spec.trial_id] = call
            self.cond.notify_all()
        call.done.wait()
        if isinstance(call.result, BaseException):
            raise call.result
        return call.result

    def ask(self, event: Event) -> Any:
        """From a trial thread or the trainer: the main thread hands ``event`` to the driver; a report
        waits for the verdict, other events are queued (in order) and return at once."""
        message = _Message(event, threading.Event() if isinstance(event, Report) else None)
        with self.cond:  # atomic with abort's drain: a message is either answered there or refused here
            if self.stop.is_set():
                raise RuntimeError(INTERRUPTED)
            self.messages.put(message)
            self.cond.notify_all()
        if message.done is None:
            return None
        message.done.wait()
        if self.stop.is_set() and message.reply is None:
            raise RuntimeError(INTERRUPTED)
        return message.reply

    # -- the trainer thread ---------------------------------------------------------------
    def _train_main(self, calls: list[_Call]) -> None:
        from tuneloop.torch._session import set_session

        set_session(self)  # the trainer's events (members' reports and logs) go through ask, as a trial's do
        error: BaseException = RuntimeError("The population ended without training this fit call.")
        try:
            self.executor.train(calls, self)
        except BaseException as exc:  # noqa: BLE001 - whatever broke, no trial may wait forever
            error = exc if isinstance(exc, Exception) else RuntimeError(INTERRUPTED)
        finally:
            for call in self.training:
                self.resolve(call, error)
            with self.cond:
                self.trainer = None
                self.cond.notify_all()

    def resolve(self, call: _Call, result: Any) -> None:
        """``call`` has its result (or error): its trial goes on. Only the first word counts."""
        with self.cond:
            if call.done.is_set():
                return
            self.running.add(call.trial_id)  # before it wakes: the main thread must not see it quiet
            call.result = result
            call.done.set()
            self.cond.notify_all()

    def refill(self, free: int) -> list[_Call]:
        """From the trainer at an epoch boundary where members left: up to ``free`` new fit calls,
        once the driver has heard of the trials that ended and started new ones (see :class:`_Request`)."""
        request = _Request(free)
        with self.cond:
            if self.stop.is_set():
                return []
            self.request = request
            self.cond.notify_all()
        request.done.wait()
        return request.calls

    # -- the main thread ------------------------------------------------------------------
    def poll(self, timeout: float) -> int:
        """Hand events to the driver for up to ``timeout`` s; return early once trials ended (or the
        trainer needs new ones), so the driver can start trials in the free slots."""
        import time

        deadline = time.monotonic() + timeout
        handled = 0
        while True:
            self._answer()
            ended, start, give = self._decide()
            for trial_id in ended:
                self._answer()  # the ended trials' last messages first
                self.executor.handler(self.ended_event(trial_id))
                self.executor.forget(trial_id)
                handled += 1
            if give is not None:
                with self.cond:
                    self.request = None
                give.done.set()
            if start:
                self.trainer = threading.Thread(target=self._train_main, args=(start,), daemon=True,
                                                name="tuneloop-population")
                self.trainer.start()
            if handled or time.monotonic() >= deadline:
                return handled
            with self.cond:
                if self.messages.empty():
                    self.cond.wait(min(0.05, max(deadline - time.monotonic(), 0.0)))

    def ended_event(self, trial_id: int) -> Event:
        with self.cond:
            del self.live[trial_id]
            return self.ended.pop(trial_id)

    def _decide(self) -> tuple[list[int], list[_Call], _Request | None]:
        """At a quiet moment: the ended trials to hand to the driver (by trial number), the calls to
        start a trainer on, or the refill request to answer (with its calls set). Ended trials are
        handed over while no trainer runs, or while it waits for a refill (until none is left: a trial
        that ended without training frees its slot then too); never while it trains, so the driver
        hears of them at the same points on every run."""
        with self.cond:
            if self.running or not self.messages.empty():
                return [], [], None
            request = self.request
            if self.trainer is None or request is not None:
                ended = sorted(self.ended, key=lambda i: self.live[i].number)
                if ended:
                    return ended, [], None  # the driver hears first, and may start trials in their slots
            parked = sorted(self.parked.values(), key=lambda c: c.number)
            if request is not None:
                if request.done.is_set() or request.calls:
                    return [], [], None  # answered, not yet applied by poll
                request.calls = parked[:max(request.free, 0)]
                for call in request.calls:
                    del self.parked[call.trial_id]
                self.training += request.calls
                return [], [], request
            if self.trainer is None and parked:
                self.parked.clear()
                self.training = list(parked)  # every call the trainer holds gets a result, whatever happens
                self.trainer = threading.current_thread()  # taken: set to the thread by poll
                return [], parked, None
            return [], [], None

    def _answer(self) -> None:
        """Hand queued events to the driver, in order; a report's verdict goes back to its thread."""
        while True:
            try:
                message = self.messages.get_nowait()
            except queue.Empty:
                return
            try:
                message.reply = self.executor.handler(message.event)
            except BaseException:
                self.stop.set()  # the run ends with the driver's error: no thread may go on training
                raise
            finally:
                if message.done is not None:
                    message.done.set()

    def abort(self) -> None:
        """Interrupted: stop the trainer at its next step and wake every waiting thread with an error,
        so none waits forever. Events already queued (logs, checkpoints) still reach the driver."""
        with self.cond:
            self.stop.set()
            calls = [*self.parked.values(), *self.training]
            self.parked = {}
            request, self.request = self.request, None
            queued = []
            while not self.messages.empty():
                queued.append(self.messages.get_nowait())
        for call in calls:
            self.resolve(call, RuntimeError(INTERRUPTED))
        if request is not None:
            request.done.set()
        for message in queued:
            if message.done is not None:
                message.done.set()  # a report's verdict: the asking thread raises INTERRUPTED
                continue
            with contextlib.suppress(Exception):  # the run is ending already; keep what can be kept
                self.executor.handler(message.event)
        trainer = self.trainer
        if trainer is not None and trainer is not threading.current_thread():
            trainer.join(timeout=30)  # it ends at its next step


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
        self._session: _Session | None = None
        self._ray: Any = None
        self.gpus: list[int] = []
        self._dealt = 0  # buckets dealt to GPUs so far: the next one goes to the next GPU
        self._gpu_of: dict[Any, int] = {}  # bucket key (on the CPU) -> its GPU, so refills join their bucket
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

    def train(self, calls: list[_Call], session: _Session) -> None:
        """On the trainer thread: train parked fit calls here (each bucket on the next GPU, with
        ``gpus``) or as Ray tasks; each call is resolved as its member leaves, and freed slots refill
        from ``session``."""
        if self._ray is not None:
            results = self._ray.train([c.kwargs for c in calls], [c.trial for c in calls], self.deliver, self.members,
                                      self.exact)
            for call, result in zip(calls, results):
                session.resolve(call, result)
            return
        from tuneloop.torch._population import run_jobs

        taken = list(calls)

        def refill(free: int, _key: Any) -> Sequence[tuple[Mapping[str, Any], Any]]:
            new = session.refill(free)
            taken.extend(new)
            return list(zip(self._placed(new), [c.trial for c in new]))

        def on_result(index: int, result: Any) -> None:
            session.resolve(taken[index], result)

        results = run_jobs(self._placed(calls), [c.trial for c in calls], max_members=self.members, exact=self.exact,
                           refill=refill, on_result=on_result, stop=session.stop)
        for call, result in zip(taken, results):
            session.resolve(call, result)

    def _placed(self, calls: list[_Call]) -> list[Mapping[str, Any]]:
        """The calls' fit arguments; with ``gpus``, each bucket of them on a GPU of its own, dealt
        round-robin, a refilled call on its bucket's GPU (a call that names its device keeps it),
        recorded as its trial's device."""
        if not self.gpus:
            return [c.kwargs for c in calls]
        from tuneloop.run._gpus import gpu_label
        from tuneloop.torch._population import bucket_keys

        placed: list[Mapping[str, Any]] = []
        keys = bucket_keys([c.kwargs if c.kwargs.get("device") is not None else {**c.kwargs, "device": "cpu"}
                            for c in calls])
        for call, key in zip(calls, keys):
            if key not in self._gpu_of:
                self._gpu_of[key] = self.gpus[self._dealt % len(self.gpus)]
                self._dealt += 1
            gpu = self._gpu_of[key]
            job = call.kwargs if call.kwargs.get("device") is not None else {**call.kwargs, "device": f"cuda:{gpu}"}
            placed.append(job)
            if call.trial is not None:
                ours = job["device"] == f"cuda:{gpu}"
                call.trial.set_attr("device", gpu_label(gpu) if ours else str(job["device"]))
        return placed

    @property
    def free_slots(self) -> int:
        return self.members - self.running

    @property
    def running(self) -> int:
        return 0 if self._session is None else len(self._session.live)

    def start(self, fn: Callable[..., Any], handler: Any, *, experiment_path: str | None = None) -> None:
        super().start(fn, handler, experiment_path=experiment_path)
        self._session = _Session(self)
        self._stopped.clear()
        self._dealt, self._gpu_of = 0, {}

    def submit(self, spec: TrialSpec) -> None:
        """Start the trial in a thread of its own; its fit call parks until a population trains it."""
        assert self._session is not None, "start() first"
        self._session.start_trial(spec)

    def poll(self, timeout: float) -> int:
        """Hand events to the driver; returns how many trials ended (their slots are free)."""
        if self._session is None or not self._session.live:
            return 0
        return self._session.poll(timeout)

    # -- the Channel trials talk through ----------------------------------------------------
    def deliver(self, event: Event) -> Any:
        """Events of trial threads and the trainer are handled on the main thread, which owns the
        driver: a report waits there for its verdict."""
        from tuneloop.torch._session import current_session

        own = current_session()  # a trial thread's or the trainer's session: a run that ended refuses
        if isinstance(own, _Session):
            return own.ask(event)
        return self.handler(event)

    def cancel(self, trial_id: int) -> None:
        super().cancel(trial_id)
        if self._ray is not None:  # members training in a Ray task read their stop requests there
            self._ray.cancel(trial_id)

    def shutdown(self, *, kill: bool = False) -> None:
        if self._session is not None:
            self._session.abort()
            self._session = None
        if self._ray is not None:
            self._ray.shutdown()


@executors.register("population", PopulationExecutor)
def _make_population(options: dict[str, Any], **_: Any) -> PopulationExecutor:
    return PopulationExecutor(**options)
