"""The Scheduler base: after each report, continue or stop the trial."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any

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

    def on_launch(self, trial_id: int, params: dict[str, Any]) -> None:  # noqa: B027
        """A trial with ``params`` starts (or is replayed on resume), before its first report."""

    def on_result(self, trial_id: int, state: str, value: float | None) -> None:  # noqa: B027
        """A trial ended (``state`` is its final state); override to learn from it."""


class PerValue(Scheduler):
    """One scheduler per value of the scientific parameters, each judging only its own trials:
    ASHA must not stop every MLP because a GRU round is better; it compares MLPs with MLPs."""

    def __init__(self, names: Sequence[str], make: Callable[[], Scheduler]) -> None:
        self.names, self.make = list(names), make
        self._by_value: dict[str, Scheduler] = {}
        self._of_trial: dict[int, Scheduler] = {}

    def on_launch(self, trial_id: int, params: dict[str, Any]) -> None:
        key = json.dumps({n: params.get(n) for n in self.names}, sort_keys=True, default=str)
        if key not in self._by_value:
            self._by_value[key] = self.make()
        self._of_trial[trial_id] = self._by_value[key]
        self._of_trial[trial_id].on_launch(trial_id, params)

    def on_report(self, trial_id: int, step: int, value: float) -> Decision:
        inner = self._of_trial.get(trial_id)
        return Decision.CONTINUE if inner is None else inner.on_report(trial_id, step, value)

    def on_result(self, trial_id: int, state: str, value: float | None) -> None:
        inner = self._of_trial.get(trial_id)
        if inner is not None:
            inner.on_result(trial_id, state, value)


schedulers: Registry[Scheduler] = Registry("scheduler", Scheduler)
