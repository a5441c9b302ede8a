"""Repeat each configuration over K seeds: ``study.run(seeds=3)`` / ``--seeds 3``.

The inner searcher proposes a configuration once; it then runs K times (each run is a trial of
its own with its own ``trial.seed``), so results can be shown as mean +/- CI and comparisons
account for seed variance. The first repeat answers the inner searcher's proposal; the others
reach it as extra observations of the same configuration.
"""

from __future__ import annotations

from typing import Any

from tuneloop._validation import check_positive_int
from tuneloop.search._base import Outcome, Proposal, Searcher


class Repeated(Searcher):
    """Every configuration of ``inner``, ``seeds`` times in a row."""

    def __init__(self, inner: Searcher, seeds: int) -> None:
        self.inner = inner
        self.seeds = check_positive_int(seeds, "seeds", "Study.run")
        self._pending: list[Proposal] = []

    def ask(self, n: int = 1) -> list[Proposal]:
        out: list[Proposal] = []
        while len(out) < n:
            if not self._pending:
                fresh = self.inner.ask(1)
                if not fresh:
                    break
                first = fresh[0]
                self._pending = [first] + [Proposal(dict(first.params)) for _ in range(self.seeds - 1)]
            out.append(self._pending.pop(0))
        return out

    def ask_with(self, fixed: dict[str, Any]) -> Proposal | None:
        """The inner searcher's completion of ``fixed``; its other seeds are the next proposals."""
        first = self.inner.ask_with(fixed)
        if first is not None:
            self._pending = [Proposal(dict(first.params)) for _ in range(self.seeds - 1)] + self._pending
        return first

    def tell(self, outcome: Outcome) -> None:
        self.inner.tell(outcome)

    def observe(self, prior: Outcome) -> bool:
        return self.inner.observe(prior)

    def reseed(self) -> bool:
        # the other seeds of a configuration already proposed stay that configuration
        return self.inner.reseed() and not self._pending

    @property
    def ends_by_itself(self) -> bool:  # type: ignore[override]  # the base's class constant, computed here
        return self.inner.ends_by_itself

    @property
    def waiting(self) -> bool:
        return not self._pending and self.inner.waiting


def repeated(searcher: Searcher, seeds: int | None) -> Searcher:
    """``searcher`` itself for None or 1 seed, else wrapped (which validates ``seeds``)."""
    return searcher if seeds is None or seeds == 1 else Repeated(searcher, seeds)

