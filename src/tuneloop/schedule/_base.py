"""The Scheduler base: after each report, continue or stop the trial."""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import Enum

from tuneloop._registry import Registry


class Decision(str, Enum):
    """A scheduler's verdict on a running trial."""

    CONTINUE = "continue"
    STOP = "stop"


class Scheduler(ABC):
    """Decides, from a trial's reported objective, whether it is worth more budget."""

    @abstractmethod
    def on_report(self, trial_id: int, step: int, value: float) -> Decision:
        """The objective ``value`` of trial ``trial_id`` at ``step``: continue or stop?"""

    def on_result(self, trial_id: int, state: str, value: float | None) -> None:  # noqa: B027
        """A trial ended (``state`` is its final state); override to learn from it."""


schedulers: Registry[Scheduler] = Registry("scheduler", Scheduler)
