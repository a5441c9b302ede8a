"""The Ray executor: one Ray task per trial, on an existing cluster or a local one.

Each trial runs as a task with its own resources (``cpus_per_trial``, ``gpus_per_trial``: 0.25
packs four small trials on one GPU). Its events travel through a mailbox actor while it runs:
emits are fire-and-forget, a report waits for the driver's verdict, so schedulers stop trials on
a cluster as they do in local processes. A task whose worker or node dies becomes a retryable
failure: the driver runs the trial again (``--max-retries``), then fails it with the cause.

Checkpoints are files the driver writes; a trial continued on another node reads its
checkpoint from the same path, so multi-node clusters that continue trials (sha, pbt) need that
folder on a shared filesystem (docs/cluster.md).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tuneloop.errors import ConfigError
from tuneloop.run._executor import Executor, executors
from tuneloop.run._system import system_every as _system_every
from tuneloop.run._worker import pickled
from tuneloop.run.events import Channel, Event, Failed, Finished, Report, TrialSpec


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("The ray executor needs Ray: pip install 'tuneloop[ray]'.") from None
    return ray


def connect(address: str | None, num_cpus: int | None = None) -> bool:
    """Join the cluster at ``address`` (None or "local": start a local one) unless Ray is already
    up in this process; True when this call started it (and should shut it down)."""
    ray = _ray()
    if ray.is_initialized():
        return False
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
    address = None if address in (None, "local") else address
    if address is None and num_cpus is not None:
        options["num_cpus"] = num_cpus
    try:
        ray.init(address=address, **options)
    except ConnectionError as exc:
        raise ConfigError(f"Cannot reach the Ray cluster at {address!r} ({exc}); start it with "
                          f"`ray start --head` or pass --address of a running one.") from None
    return True


def _paths() -> list[str]:
    import sys

    return [p for p in sys.path if p]


def _add_paths(paths: list[str]) -> None:
    import sys

    sys.path.extend(p for p in paths if p not in sys.path)  # the driver's import path, where it exists here


class _Mailbox:
    """Events from running trials to the driver, verdicts back (a Ray actor, async)."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.arrived = asyncio.Event()
        self.verdicts: dict[tuple[int, int], asyncio.Future] = {}
        self.stops: set[int] = set()
        self.seq = 0

    async def emit(self, event: Any) -> None:
        self.events.append(("event", None, event))
        self.arrived.set()

    async def report(self, event: Any) -> bool:
        self.seq += 1
        key = (event.trial_id, self.seq)
        future = asyncio.get_running_loop().create_future()
        self.verdicts[key] = future
        self.events.append(("report", key, event))
        self.arrived.set()
        return bool(await future) or event.trial_id in self.stops

    async def take(self, timeout: float) -> list[Any]:
        if not self.events:
            try:
                await asyncio.wait_for(self.arrived.wait(), timeout)
            except TimeoutError:
                pass
        events, self.events = self.events, []
        self.arrived.clear()
        return events

    async def decide(self, key: tuple[int, int], stop: bool) -> None:
        future = self.verdicts.pop((int(key[0]), int(key[1])), None)
        if future is not None and not future.done():
            future.set_result(stop)

    async def stop(self, trial_id: int) -> None:
        self.stops.add(trial_id)

    async def stopped(self, trial_id: int) -> bool:
        return trial_id in self.stops

    async def flush(self) -> None:
        """Called by a trial before it returns: its earlier emits have arrived by then."""


def _mailbox() -> Any:
    """The mailbox actor, on the driver's own node: a worker node that dies cannot take it along."""
    ray = _ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    return ray.remote(num_cpus=0)(_Mailbox).options(scheduling_strategy=here).remote()


class _RayChannel(Channel):
    """A Trial's way back to the driver from a Ray task."""

    def __init__(self, mailbox: Any) -> None:
        self.mailbox = mailbox

    def report(self, spec: TrialSpec, step: int, metrics: dict[str, float]) -> bool:
        return bool(_ray().get(self.mailbox.report.remote(Report(spec.trial_id, step, metrics))))

    def emit(self, spec: TrialSpec, event: Event) -> None:
        self.mailbox.emit.remote(event)

    def stop_requested(self, spec: TrialSpec) -> bool:
        return bool(_ray().get(self.mailbox.stopped.remote(spec.trial_id)))


def _run_trial(fn_blob: bytes, experiment_path: str | None, spec: TrialSpec, mailbox: Any, threads: int,
               paths: list[str], every: float | None = None) -> Any:
    """The body of a trial's Ray task: load the function as a worker process does, run it (its node and
    device recorded, its process sampled every ``every`` seconds)."""
    from tuneloop.run._system import run_watched
    from tuneloop.run._worker import limit_threads, load_function

    _add_paths(paths)
    limit_threads(threads)
    try:
        fn = load_function(fn_blob, experiment_path)
    except Exception as exc:  # noqa: BLE001 - reported as the trial's failure
        return Failed(spec.trial_id, f"WorkerSetup: a Ray worker could not load the trial function "
                                     f"({type(exc).__name__}: {exc}); define it in an importable module or "
                                     f"an experiment file on every node.")
    limit_threads(threads)
    event = run_watched(fn, spec, _RayChannel(mailbox), every=every)
    _ray().get(mailbox.flush.remote())
    return event


class RayExecutor(Executor):
    """Run each trial as a Ray task; ``address`` joins a cluster ("auto", "ray://host:10001"),
    None starts a local one (with ``num_cpus`` CPUs, default all)."""

    def __init__(self, address: str | None = None, *, cpus_per_trial: float = 1.0, gpus_per_trial: float = 0.0,
                 max_concurrent: int | None = None, num_cpus: int | None = None,
                 system_every: float | None = None) -> None:
        if cpus_per_trial <= 0 or gpus_per_trial < 0:
            raise ConfigError(f"The ray executor needs cpus_per_trial > 0 and gpus_per_trial >= 0; got "
                              f"{cpus_per_trial} and {gpus_per_trial}.")
        self.address, self.cpus, self.gpus = address, float(cpus_per_trial), float(gpus_per_trial)
        self.max_concurrent, self.num_cpus = max_concurrent, num_cpus
        self.every = _system_every(system_every)  # seconds between system samples of each trial (None: off)
        self._running: dict[Any, TrialSpec] = {}  # ObjectRef -> spec
        self._started_ray = False

    def start(self, fn: Any, handler: Any, *, experiment_path: str | None = None) -> None:
        super().start(fn, handler, experiment_path=experiment_path)
        ray = _ray()
        self._fn_blob = pickled(fn, "Ray workers")
        self._started_ray = connect(self.address, self.num_cpus)
        resources = ray.cluster_resources()
        slots = int(resources.get("CPU", 1) // self.cpus)
        if self.gpus > 0:
            if resources.get("GPU", 0) <= 0:
                raise ConfigError("gpus_per_trial > 0 but the Ray cluster has no GPU; drop --gpus-per-trial.")
            slots = min(slots, int(resources["GPU"] // self.gpus))
        self.slots = max(1, min(slots, self.max_concurrent or slots))
        self._mailbox = _mailbox()
        self._task = ray.remote(_run_trial).options(num_cpus=self.cpus, num_gpus=self.gpus, max_retries=0)
        self._threads = max(1, int(self.cpus))
        self._paths = _paths()

    @property
    def free_slots(self) -> int:
        return self.slots - len(self._running)

    @property
    def running(self) -> int:
        return len(self._running)

    def submit(self, spec: TrialSpec) -> None:
        ref = self._task.remote(self._fn_blob, self.experiment_path, spec, self._mailbox, self._threads, self._paths,
                                self.every)
        self._running[ref] = spec

    def cancel(self, trial_id: int) -> None:
        self._mailbox.stop.remote(trial_id)

    def poll(self, timeout: float) -> int:
        ray = _ray()
        handled = self._deliver(ray.get(self._mailbox.take.remote(timeout)))
        if not self._running:
            return handled
        done, _ = ray.wait(list(self._running), num_returns=len(self._running), timeout=0)
        if done:
            handled += self._deliver(ray.get(self._mailbox.take.remote(0)))  # what they sent before ending
        for ref in done:
            spec = self._running.pop(ref)
            try:
                event = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - the task's worker or node died
                event = Failed(spec.trial_id, f"WorkerDied: the Ray worker running this trial died ({_cause(exc)}).",
                               retryable=True)
            if isinstance(event, (Finished, Failed)):
                self.handler(event)
            handled += 1
        return handled

    def _deliver(self, events: list[Any]) -> int:
        return deliver(self._mailbox, events, self.handler)

    def shutdown(self, *, kill: bool = False) -> None:
        ray = _ray()
        if kill:
            for ref in list(self._running):
                ray.cancel(ref, force=True)
        deadline = time.monotonic() + 5
        while kill and self._running and time.monotonic() < deadline:
            done, _ = ray.wait(list(self._running), num_returns=len(self._running), timeout=0.5)
            for ref in done:
                self._running.pop(ref, None)
        self._running.clear()
        if self._started_ray and ray.is_initialized():
            ray.shutdown()
            self._started_ray = False


def _cause(exc: BaseException) -> str:
    """One line: the error inside a Ray task error, or the Ray error itself."""
    inner = getattr(exc, "cause", None) or exc
    lines = [ln for ln in str(inner).splitlines() if ln.strip()]
    return f"{type(inner).__name__}: {lines[-1][:200] if lines else ''}"


def deliver(mailbox: Any, events: list[Any], handler: Any) -> int:
    """Hand the mailbox's events to the driver; reports get their verdicts back (a trial stopped
    between reports is the driver's ``cancel``, which tells the mailbox)."""
    for kind, key, event in events:
        verdict = handler(event)
        if kind == "report":
            mailbox.decide.remote(key, bool(verdict))
    return len(events)


def _train_bucket(blob: bytes, states: list[dict[str, Any] | None], mailbox: Any, max_members: int | None,
                  paths: list[str], exact: bool = False) -> list[Any]:
    """The body of a population bucket's Ray task: its fit calls trained as populations there,
    every member reporting to the driver through the mailbox."""
    from ray import cloudpickle

    from tuneloop.torch._population import run_jobs
    from tuneloop.trial import Trial

    _add_paths(paths)
    jobs = cloudpickle.loads(blob)
    trials: list[Any] = []
    for state in states:
        if state is None:
            trials.append(None)
            continue
        trial = Trial(state["spec"], _RayChannel(mailbox))
        trial.splits_used, trial._extra = state["splits_used"], state["extra"]
        trials.append(trial)
    results = run_jobs(jobs, trials, max_members=max_members, exact=exact)
    _ray().get(mailbox.flush.remote())
    return results


class RayBuckets:
    """Where the population executor trains on a Ray cluster: one task per bucket of fit calls
    (equal architecture, optimizer, batch size and data), each with its own resources."""

    def __init__(self, address: str | None, cpus: float = 1.0, gpus: float = 0.0) -> None:
        self.address, self.cpus, self.gpus = address, float(cpus), float(gpus)
        self.started = False
        self._task: Any = None

    def train(self, jobs: list[dict[str, Any]], trials: list[Any], handler: Any, max_members: int | None,
              exact: bool = False) -> list[Any]:
        ray = _ray()
        from ray import cloudpickle

        from tuneloop.torch._population import bucket_groups

        if self._task is None:
            self.started = connect(self.address)
            self._mailbox = _mailbox()
            self._task = ray.remote(_train_bucket).options(num_cpus=self.cpus, num_gpus=self.gpus, max_retries=0)
        results: list[Any] = [None] * len(jobs)
        pending = {}
        for group in bucket_groups(jobs):
            states = [None if trials[i] is None else {"spec": trials[i]._spec, "splits_used": trials[i].splits_used,
                                                      "extra": trials[i].extra_heldout()} for i in group]
            try:
                blob = cloudpickle.dumps([{k: v for k, v in jobs[i].items() if k != "trial"} for i in group])
            except Exception as exc:  # noqa: BLE001 - an unpicklable model function fails its trials
                for i in group:
                    results[i] = ConfigError(f"The fit call cannot be sent to a Ray worker ({exc}); build the model in "
                                             f"a function that captures only picklable values.")
                continue
            pending[self._task.remote(blob, states, self._mailbox, max_members, _paths(), exact)] = group
        while pending:
            deliver(self._mailbox, ray.get(self._mailbox.take.remote(0.05)), handler)
            done, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0)
            if done:
                deliver(self._mailbox, ray.get(self._mailbox.take.remote(0)), handler)
            for ref in done:
                group = pending.pop(ref)
                try:
                    out = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - the task's worker or node died, or it broke
                    out = [RuntimeError(f"The Ray task training this population failed: {_cause(exc)}.")] * len(group)
                for i, result in zip(group, out):
                    results[i] = result
        return results

    def cancel(self, trial_id: int) -> None:
        """A member training in a bucket's task sees this at its next ``should_stop``."""
        if self._task is not None:
            self._mailbox.stop.remote(trial_id)

    def shutdown(self) -> None:
        if self.started and _ray().is_initialized():
            _ray().shutdown()
        self.started, self._task = False, None


@executors.register("ray", RayExecutor)
def _make_ray(options: dict[str, Any], **_: Any) -> RayExecutor:
    return RayExecutor(**options)
