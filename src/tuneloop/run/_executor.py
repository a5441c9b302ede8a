"""The Executor base: where trials run. The driver submits specs and pumps events.

An executor calls ``handler(event)`` for every event of every trial it runs; for a Report the
handler returns True when the trial must stop, and the executor delivers that verdict back to
the trial before it continues. To stop a trial between reports (an alert rule fired on a logged
value) the driver calls :meth:`Executor.cancel`; the trial sees it at ``trial.should_stop()`` or
its next report.

Trials run either in the driver's own process, where the executor is also their
:class:`~tuneloop.run.events.Channel` (:class:`InProcessExecutor`: inline, population), or
elsewhere, where a worker-side channel carries their events back (processes, Ray).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from tuneloop._registry import Registry
from tuneloop.run.events import Channel, Event, Report, TrialSpec

Handler = Callable[[Event], bool]


class Executor(ABC):
    """Runs trials and streams their events to the driver."""

    def start(self, fn: Callable[..., Any], handler: Handler, *, experiment_path: str | None = None) -> None:
        """Prepare to run ``fn``; events go to ``handler``. ``experiment_path`` is the file that
        defines ``fn`` when it was loaded by path (workers import it the same way)."""
        self.fn, self.handler, self.experiment_path = fn, handler, experiment_path

    @property
    @abstractmethod
    def free_slots(self) -> int:
        """How many more trials can be submitted right now."""

    @property
    @abstractmethod
    def running(self) -> int:
        """How many submitted trials have not finished."""

    @abstractmethod
    def submit(self, spec: TrialSpec) -> None:
        """Start a trial (inline executors run it to completion here)."""

    @abstractmethod
    def poll(self, timeout: float) -> int:
        """Deliver pending events to the handler, waiting up to ``timeout`` s; returns how many."""

    @abstractmethod
    def cancel(self, trial_id: int) -> None:
        """Ask a running trial to stop: ``trial.should_stop()`` turns True (the driver calls this
        when an alert rule stops a trial between reports)."""

    def shutdown(self, *, kill: bool = False) -> None:
        """Release workers; ``kill`` ends running trials at once."""


class InProcessExecutor(Executor, Channel):
    """An executor whose trials run in the driver's own process, so it is their Channel too:
    reports and events go straight to the handler (:meth:`deliver`), and a cancelled trial is
    remembered until its next ``should_stop``."""

    def __init__(self) -> None:
        self._stopped: set[int] = set()

    def deliver(self, event: Event) -> Any:
        """Hand ``event`` to the driver; the handler's verdict (for a Report) comes back."""
        return self.handler(event)

    def report(self, spec: TrialSpec, step: int, metrics: dict[str, float]) -> bool:
        return bool(self.deliver(Report(spec.trial_id, step, metrics)))

    def emit(self, spec: TrialSpec, event: Event) -> None:
        self.deliver(event)

    def stop_requested(self, spec: TrialSpec) -> bool:
        return spec.trial_id in self._stopped

    def cancel(self, trial_id: int) -> None:
        self._stopped.add(trial_id)

    def forget(self, trial_id: int) -> None:
        """The trial has ended: a later trial never sees its stop request."""
        self._stopped.discard(trial_id)


executors: Registry[Executor] = Registry("executor", Executor)
