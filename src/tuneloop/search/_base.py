"""The Searcher base: ``ask`` for configurations, ``tell`` how they did."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from tuneloop._registry import Registry


@dataclass(frozen=True)
class Proposal:
    """A configuration to try; ``token`` is the searcher's own handle for the later ``tell``."""

    params: dict[str, Any]
    token: Any = None
    # planners (successive halving, PBT) continue trials: from which trial's checkpoint, with
    # which budget, and where the trial sits in the plan (member, generation, event)
    resume_from: int | None = None
    budget: dict[str, Any] | None = None
    meta: dict[str, Any] | None = None


@dataclass(frozen=True)
class Outcome:
    """How a configuration did. ``token`` is None for trials the searcher did not propose
    (replayed from the store on resume, or re-run after an interruption).

    ``state`` is a trial state name; ``curve`` holds the objective's (step, value) reports.
    A state of ``"interrupted"`` only says "this configuration is taken, its result will come".
    """

    params: dict[str, Any]
    state: str
    value: float | None = None
    curve: list[tuple[int, float]] = field(default_factory=list)
    token: Any = None
    number: int | None = None  # the trial's number in its study
    meta: dict[str, Any] | None = None  # the proposal's meta (replayed from the store on resume)


class Searcher(ABC):
    """Proposes configurations and learns from their outcomes."""

    @abstractmethod
    def ask(self, n: int = 1) -> list[Proposal]:
        """Up to ``n`` new configurations; fewer (or none) when the searcher is exhausted."""

    @abstractmethod
    def tell(self, outcome: Outcome) -> None:
        """Learn from a finished (or replayed) trial."""

    @property
    def waiting(self) -> bool:
        """True when ``ask`` has nothing now but will once running trials end (a generation of
        PBT, a rung of successive halving): the driver waits instead of stopping."""
        return False


searchers: Registry[Searcher] = Registry("searcher", Searcher)
