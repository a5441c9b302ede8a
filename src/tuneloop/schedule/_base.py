"""The Scheduler base: after each report, continue or stop the trial.

Everything the driver and ``launch`` read from a scheduler is declared here: ``on_launch``,
``on_report`` (a :class:`Decision`), ``on_result``; ``plan`` (the searcher the run uses: the
given one, or a planner's generations), ``checkpoints`` (every trial saves one at its end, to be
continued from) and ``ends_by_itself`` (the plan runs out: a run needs no trial count).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar

from tuneloop._registry import Registry

if TYPE_CHECKING:
    from tuneloop.search import Searcher
    from tuneloop.space import Space


class Decision(str, Enum):
    """A scheduler's verdict on a running trial."""

    CONTINUE = "continue"
    STOP = "stop"


class Scheduler(ABC):
    """Decides, from a trial's reported objective, whether it is worth more budget."""

    checkpoints: ClassVar[bool] = False
    """True when trials continue from each other's checkpoints: the driver has every trial save one."""
    ends_by_itself: ClassVar[bool] = False
    """True when the plan runs out on its own (sha, pbt): a run needs no trial count."""

    @abstractmethod
    def on_report(self, trial_id: int, step: int, value: float) -> Decision:
        """The objective ``value`` of trial ``trial_id`` at ``step``: continue or stop?"""

    def on_launch(self, trial_id: int, params: dict[str, Any]) -> None:
        """A trial with ``params`` starts (or is replayed on resume), before its first report."""

    def on_result(self, trial_id: int, state: str, value: float | None) -> None:
        """A trial ended (``state`` is its final TrialState); override to learn from it."""

    def replay(self, trial_id: int, params: dict[str, Any], curve: Sequence[tuple[int, float]], state: str,
               value: float | None) -> None:
        """A trial that finished before this run (or under another driver), told whole: launched,
        each report, its end. Override when judging the replayed reports would only cost time."""
        self.on_launch(trial_id, params)
        for step, point in curve:
            self.on_report(trial_id, step, point)
        self.on_result(trial_id, state, value)

    def plan(self, searcher: Searcher, space: Space, budget: Mapping[str, Any], seed: int) -> Searcher:
        """The searcher the run asks: ``searcher`` itself, unless this scheduler plans what runs."""
        return searcher


class PerValue(Scheduler):
    """One scheduler per value of the scientific parameters, each judging only its own trials:
    ASHA must not stop every MLP because a GRU round is better; it compares MLPs with MLPs."""

    def __init__(self, names: Sequence[str], make: Callable[[], Scheduler]) -> None:
        self.names, self.make = list(names), make
        self._by_value: dict[str, Scheduler] = {}
        self._of_trial: dict[int, Scheduler] = {}

    def _pick(self, trial_id: int, params: dict[str, Any]) -> Scheduler:
        key = json.dumps({n: params.get(n) for n in self.names}, sort_keys=True, default=str)
        if key not in self._by_value:
            self._by_value[key] = self.make()
        self._of_trial[trial_id] = self._by_value[key]
        return self._of_trial[trial_id]

    def on_launch(self, trial_id: int, params: dict[str, Any]) -> None:
        self._pick(trial_id, params).on_launch(trial_id, params)

    def on_report(self, trial_id: int, step: int, value: float) -> Decision:
        inner = self._of_trial.get(trial_id)
        return Decision.CONTINUE if inner is None else inner.on_report(trial_id, step, value)

    def on_result(self, trial_id: int, state: str, value: float | None) -> None:
        inner = self._of_trial.get(trial_id)
        if inner is not None:
            inner.on_result(trial_id, state, value)

    def replay(self, trial_id: int, params: dict[str, Any], curve: Sequence[tuple[int, float]], state: str,
               value: float | None) -> None:
        self._pick(trial_id, params).replay(trial_id, params, curve, state, value)


schedulers: Registry[Scheduler] = Registry("scheduler", Scheduler)
