"""The Searcher base: ``ask`` for configurations, ``tell`` how they did.

Everything the driver reads from a searcher is declared here: ``ask``, ``tell``, ``waiting`` (a
planner between generations) and ``ends_by_itself`` (the searcher runs out: a grid, a list).
A planner's proposals carry a typed :class:`Lineage`, stored with the trial and handed back in
the trial's :class:`Outcome`, also when the driver replays it from the store on resume.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from tuneloop._registry import Registry
from tuneloop.store import TrialState


@dataclass(frozen=True)
class Lineage:
    """Where a planner's trial sits in its plan: ``member`` of the population, ``generation``
    (rung), and why it runs (``event``: start, promote, continue, exploit). ``info`` holds any
    other plain data the planner wants stored with the trial."""

    member: int
    generation: int
    event: str = "start"
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Proposal:
    """A configuration to try; ``token`` is the searcher's own handle for the later ``tell``."""

    params: dict[str, Any]
    token: Any = None
    # planners (successive halving, PBT) continue trials: from which trial's checkpoint (its
    # number), with which budget, and where the trial sits in the plan
    resume_from: int | None = None
    budget: dict[str, Any] | None = None
    lineage: Lineage | None = None


@dataclass(frozen=True)
class Outcome:
    """How a configuration did. ``token`` is None for trials the searcher did not propose
    (replayed from the store on resume, or re-run after an interruption).

    ``state`` is a :class:`~tuneloop.store.TrialState`; ``curve`` holds the objective's (step,
    value) reports. ``INTERRUPTED`` only says "this configuration is taken, its result will come".
    """

    params: dict[str, Any]
    state: str
    value: float | None = None
    curve: list[tuple[int, float]] = field(default_factory=list)
    token: Any = None
    number: int | None = None  # the trial's number in its study
    lineage: Lineage | None = None  # the proposal's lineage (replayed from the store on resume)
    values: tuple[float, ...] | None = None  # every objective, in order (None: one missing or not finite)
    violations: tuple[float, ...] = ()  # how far each constraint is broken (0 or less: kept)
    judged: float | None = None  # what the study's scheduler compares (prune_on); None: the value

    @property
    def pending(self) -> bool:
        """The trial has not ended (interrupted, or still running): its result comes later."""
        return self.state in (TrialState.INTERRUPTED, TrialState.RUNNING, TrialState.QUEUED)


class Searcher(ABC):
    """Proposes configurations and learns from their outcomes."""

    ends_by_itself: ClassVar[bool] = False
    """True when ``ask`` eventually returns nothing (a grid, a list): a run needs no trial count."""

    @abstractmethod
    def ask(self, n: int = 1) -> list[Proposal]:
        """Up to ``n`` new configurations; fewer (or none) when the searcher is exhausted."""

    @abstractmethod
    def tell(self, outcome: Outcome) -> None:
        """Learn from a finished (or replayed) trial."""

    def ask_with(self, fixed: dict[str, Any]) -> Proposal | None:
        """One configuration holding the ``fixed`` values (an enqueued one, maybe partial) with the rest
        chosen by this searcher; None (the default) lets :func:`tuneloop.search.fill` complete it."""
        return None

    @property
    def waiting(self) -> bool:
        """True when ``ask`` has nothing now but will once running trials end (a generation of
        PBT, a rung of successive halving): the driver waits instead of stopping."""
        return False

    def reseed(self) -> bool:
        """Draw from a fresh random state from now on: another driver of the study built its searcher
        from the same seed, and the two must not propose the same configurations. True when the next
        proposal may now differ (the driver then proposes its first trial again); False (the default)
        for searchers without randomness to change (a grid, a list, a plan)."""
        return False

    def observe(self, prior: Outcome) -> bool:
        """Learn from an earlier study's finished trial (a warm start): a prior observation, never
        one of this study's trials. False when this searcher does not learn from observations (a
        grid or a list runs what it runs); model-based searchers override it."""
        return False


searchers: Registry[Searcher] = Registry("searcher", Searcher)
