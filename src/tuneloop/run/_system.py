"""System metrics of a running trial, and the facts of where it runs.

While a trial runs, a sampler thread in the process that runs it reads every few seconds (5 by
default; ``TUNELOOP_SYSTEM_EVERY`` seconds, ``0`` turns it off) the process's CPU percent and
resident memory, and with NVML (``pip install nvidia-ml-py``) the GPU memory this process holds on
its device (``cuda:0``) and that device's utilisation. They are ordinary metrics named ``sys/...``
with step = whole seconds since the trial started, logged like ``Trial.log`` values (never
reported: they reach no scheduler, objective or final value).

A sample never changes a trial's outcome: the sampler stops at the first failure and when the trial
ends. Where the channel's ``emit`` is not thread-safe (every in-process executor, Ray's mailbox),
samples wait in a queue and are sent on the trial's own thread at its next ``report``, ``log`` or
``should_stop`` and at its end; a worker process's pipe channel sends them at once, under its lock.
"""

from __future__ import annotations

import collections
import math
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from tuneloop.errors import ConfigError
from tuneloop.run._execute import execute
from tuneloop.run.events import Attrs, Channel, Event, Failed, Finished, Scalars, TrialSpec

EVERY_ENV = "TUNELOOP_SYSTEM_EVERY"
DEFAULT_EVERY = 5.0
PREFIX = "sys/"  # the names system metrics take; views keep them out of the training curves


def system_every(value: float | None = None) -> float | None:
    """Seconds between samples: ``value`` when given, else ``$TUNELOOP_SYSTEM_EVERY``, else 5; None
    (off) for 0."""
    raw: Any = value if value is not None else os.environ.get(EVERY_ENV, "").strip() or DEFAULT_EVERY
    try:
        every = float(raw)
    except (TypeError, ValueError):
        every = math.nan
    if not math.isfinite(every) or every < 0 or isinstance(raw, bool):
        source = f"{EVERY_ENV}={raw!r:.40}" if value is None else f"system_every={raw!r:.40}"
        raise ConfigError(f"{source} must be a number of seconds between system samples (e.g. 5), or 0 to turn "
                          f"them off.")
    return every or None


class _Probe:
    """Reads this process's numbers: psutil for CPU and memory, NVML for its GPU."""

    def __init__(self) -> None:
        import psutil

        from tuneloop.run._gpus import nvml, nvml_handle, visible_gpus

        self.process = psutil.Process(os.getpid())
        self.process.cpu_percent(None)  # the first call only starts the interval the next one measures
        gpus = visible_gpus() if nvml() is not None else []
        self.gpu = nvml_handle(gpus[0]) if gpus else None  # this process's cuda:0
        self.gpu_reads = {"sys/gpu_mem_mb": self._gpu_mem, "sys/gpu_util": self._gpu_util} if self.gpu else {}

    def read(self) -> dict[str, float]:
        values = {"sys/cpu_percent": float(self.process.cpu_percent(None)),
                  "sys/rss_mb": self.process.memory_info().rss / 2**20}
        for name, read in list(self.gpu_reads.items()):
            try:
                value = read()
            except Exception:  # noqa: BLE001 - e.g. no utilisation on a MIG instance: that one reading stops
                value = None
            if value is None:
                del self.gpu_reads[name]
            else:
                values[name] = value
        return values

    def _gpu_mem(self) -> float | None:
        """What this process holds on its GPU: NVML's figure for its pid (the CUDA context included);
        in a container, where NVML shows other pids, what torch has reserved."""
        from tuneloop.run._gpus import nvml

        pid = os.getpid()
        for p in nvml().nvmlDeviceGetComputeRunningProcesses(self.gpu):
            if p.pid == pid and p.usedGpuMemory is not None:
                return float(p.usedGpuMemory) / 2**20
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_initialized():
            return float(torch.cuda.memory_reserved(0)) / 2**20
        return 0.0

    def _gpu_util(self) -> float:
        from tuneloop.run._gpus import nvml

        return float(nvml().nvmlDeviceGetUtilizationRates(self.gpu).gpu)


class Sampler:
    """Samples this process every ``every`` seconds on a daemon thread while a trial runs, handing each
    sample (a Scalars event) to ``send``; at most one per whole second of the trial."""

    def __init__(self, trial_id: int, every: float, send: Callable[[Event], None]) -> None:
        self.trial_id, self.every, self.send = trial_id, every, send
        self._stopped = threading.Event()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True, name="tuneloop-system")
        self._thread.start()

    def _run(self) -> None:
        last = -1
        try:
            probe = _Probe()
            while not self._stopped.wait(self.every):
                step = int(time.monotonic() - self._started)
                if step == last:
                    continue
                values = probe.read()
                if self._stopped.is_set():
                    return  # the trial ended meanwhile: nothing more goes out for it
                self.send(Scalars(self.trial_id, step, values))
                last = step
        except Exception:  # noqa: BLE001 - a sample must never change a trial's outcome: stop sampling
            return

    def stop(self) -> None:
        """Stop sampling; after this returns, nothing more is sent."""
        self._stopped.set()
        self._thread.join(timeout=5.0)


class _Watched(Channel):
    """The trial's channel, with system samples queued until the trial's own thread sends them."""

    def __init__(self, channel: Channel, spec: TrialSpec) -> None:
        self.channel, self.spec = channel, spec
        self.queue: collections.deque[Event] = collections.deque()

    def push(self, event: Event) -> None:  # the sampler's thread
        self.queue.append(event)

    def flush(self) -> None:  # the trial's thread
        while self.queue:
            self.channel.emit(self.spec, self.queue.popleft())

    def report(self, spec: TrialSpec, step: int, metrics: dict[str, float]) -> bool:
        self.flush()
        return self.channel.report(spec, step, metrics)

    def emit(self, spec: TrialSpec, event: Event) -> None:
        self.flush()
        self.channel.emit(spec, event)

    def stop_requested(self, spec: TrialSpec) -> bool:
        self.flush()
        return self.channel.stop_requested(spec)


def where() -> dict[str, str]:
    """The attributes every trial gets at its start: the device it may use and the host."""
    from tuneloop.run._gpus import device_label

    try:
        device = device_label()
    except Exception as exc:  # noqa: BLE001 - a broken CUDA install must not fail the trial over a label
        device = f"unknown ({type(exc).__name__})"
    return {"device": device, "host": socket.gethostname()}


def run_watched(fn: Callable[..., Any], spec: TrialSpec, channel: Channel, *, every: float | None = None,
                sample: bool = True) -> Finished | Failed:
    """Run one trial as :func:`~tuneloop.run._execute.execute` does, with its device and host recorded
    first and this process sampled every ``every`` seconds while it runs (None: off; ``sample=False``:
    the process is shared by several trials at once, so its numbers are no one trial's)."""
    channel.emit(spec, Attrs(spec.trial_id, where()))
    if not sample or every is None:
        return execute(fn, spec, channel)
    direct: Callable[[Event], None] | None = getattr(channel, "send_from_any_thread", None)  # a thread-safe send
    watched = _Watched(channel, spec)
    sampler = Sampler(spec.trial_id, every, direct or watched.push)
    try:
        event = execute(fn, spec, watched)
    finally:
        sampler.stop()
    watched.flush()
    return event
