"""The Executor base: where trials run. The driver submits specs and pumps events.

An executor calls ``handler(event)`` for every event of every trial it runs; for a Report the
handler returns True when the trial must stop, and the executor delivers that verdict back to
the trial before it continues.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from tuneloop._registry import Registry
from tuneloop.run.events import Event, TrialSpec

Handler = Callable[[Event], Any]


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

    def cancel(self, trial_id: int) -> None:  # noqa: B027 - optional
        """Ask a running trial to stop at its next report."""

    def shutdown(self, *, kill: bool = False) -> None:  # noqa: B027 - optional
        """Release workers; ``kill`` ends running trials at once."""


executors: Registry[Executor] = Registry("executor", Executor)
