"""The grid searcher: every configuration of ``Space.grid(steps)``, in order or shuffled.

It walks the space's own enumeration rather than Optuna's GridSampler, because that one
cannot express conditional parameters; it is exhausted when every point has been proposed.
"""

from __future__ import annotations

import json
import random
from typing import Any

from tuneloop.search._base import Outcome, Proposal, Searcher, searchers
from tuneloop.space import Space


def _key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True)


class GridSearcher(Searcher):
    """Propose each grid point once; ``shuffle`` draws them in a seeded random order."""

    ends_by_itself = True

    def __init__(self, space: Space, steps: int | dict[str, int] = 5, shuffle: bool = False,
                 seed: int | None = None) -> None:
        self.points = space.grid(steps)
        if shuffle:
            random.Random(seed).shuffle(self.points)
        self._taken: set[str] = set()
        self._next = 0

    def ask(self, n: int = 1) -> list[Proposal]:
        out: list[Proposal] = []
        while len(out) < n and self._next < len(self.points):
            point = self.points[self._next]
            self._next += 1
            if _key(point) not in self._taken:
                self._taken.add(_key(point))
                out.append(Proposal(dict(point)))
        return out

    def ask_with(self, fixed: dict[str, Any]) -> Proposal | None:
        """The next point not yet taken that holds the ``fixed`` values; None when none does (a value
        off the grid), which leaves every grid point to run."""
        for point in self.points:
            if _key(point) not in self._taken and all(point.get(k) == v for k, v in fixed.items()):
                self._taken.add(_key(point))
                return Proposal(dict(point))
        return None

    def tell(self, outcome: Outcome) -> None:
        self._taken.add(_key(outcome.params))


@searchers.register("grid", GridSearcher)
def _make_grid(options: dict[str, Any], space: Space, seed: int | None = None, **_: Any) -> GridSearcher:
    return GridSearcher(space, seed=seed, **options)
