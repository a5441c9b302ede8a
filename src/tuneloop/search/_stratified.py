"""Scientific parameters get equal shares; nuisance parameters are tuned away for each value.

The playbook's fair comparison: for every value of the scientific parameters (every point of
their grid) a searcher of its own tunes the nuisance parameters, learning only from the trials
at that value, and values take turns, so each gets the same number of trials. Comparing the best
trial per value then compares the values, not how lucky each was with its learning rate.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from tuneloop.errors import ConfigError
from tuneloop.search._base import Outcome, Proposal, Searcher
from tuneloop.space import Choice, Param, Space

MAX_LEVELS = 64


def scientific_levels(space: Space, scientific: Sequence[str], steps: int = 5) -> list[dict[str, Any]]:
    """Every combination of the scientific parameters' values (Choice values, Int values, or
    ``steps`` points of a Float)."""
    for name in scientific:
        if name not in space:
            top = ", ".join(space) or "none"
            raise ConfigError(f"Scientific parameter {name!r} is not a top-level parameter of the space "
                              f"(top-level ones: {top}).")
    sub = Space({n: _without_children(space[n]) for n in scientific})
    levels = sub.grid(steps)
    if len(levels) > MAX_LEVELS:
        raise ConfigError(f"The scientific parameters make {len(levels)} values to compare (more than {MAX_LEVELS}); "
                          f"declare fewer, or make them tl.Choice lists of the values worth comparing.")
    return levels


def _without_children(p: Param) -> Param:
    return Choice(list(p.values)) if isinstance(p, Choice) and p.children else p


def nuisance_space(space: Space, scientific: Sequence[str], level: Mapping[str, Any]) -> Space | None:
    """The parameters left to tune at one scientific value: the other top-level ones and the
    children that value switches on (None when nothing is left)."""
    params: dict[str, Param] = {n: p for n, p in space.items() if n not in scientific}
    for name in scientific:
        p = space[name]
        if isinstance(p, Choice):
            child = p.child(level[name])
            if child is not None:
                params.update(dict(child.items()))
    return Space(params) if params else None


class Stratified(Searcher):
    """Round-robin over scientific values; one inner searcher per value over the nuisance space."""

    def __init__(self, space: Space, scientific: Sequence[str], make_inner: Callable[[Space, int], Searcher],
                 steps: int = 5) -> None:
        self.scientific = list(scientific)
        self.levels = scientific_levels(space, scientific, steps)
        self.inner: list[Searcher | None] = []
        for i, level in enumerate(self.levels):
            sub = nuisance_space(space, scientific, level)
            self.inner.append(None if sub is None else make_inner(sub, i))
        self.counts = [0] * len(self.levels)
        self.exhausted = [False] * len(self.levels)
        self._keys = [_key(level) for level in self.levels]

    def ask(self, n: int = 1) -> list[Proposal]:
        out: list[Proposal] = []
        while len(out) < n:
            open_levels = [i for i in range(len(self.levels)) if not self.exhausted[i]]
            if not open_levels:
                break
            i = min(open_levels, key=lambda j: (self.counts[j], j))
            inner = self.inner[i]
            if inner is None:
                out.append(Proposal(dict(self.levels[i]), token=(i, None)))
            else:
                got = inner.ask(1)
                if not got:
                    self.exhausted[i] = True
                    continue
                out.append(Proposal({**self.levels[i], **got[0].params}, token=(i, got[0].token)))
            self.counts[i] += 1
        return out

    def ask_with(self, fixed: dict[str, Any]) -> Proposal | None:
        """``fixed`` at the scientific value it names (the one with the fewest trials among those it
        fits), the rest from that value's searcher."""
        fits = [i for i, level in enumerate(self.levels) if all(fixed.get(n, v) == v for n, v in level.items())]
        if not fits:
            return None
        i = min(fits, key=lambda j: (self.counts[j], j))
        inner, rest = self.inner[i], {k: v for k, v in fixed.items() if k not in self.scientific}
        got = None if inner is None else (inner.ask_with(rest) if rest else next(iter(inner.ask(1)), None))
        if inner is not None and got is None:
            return None
        self.counts[i] += 1
        return Proposal({**self.levels[i], **({} if got is None else got.params)},
                        token=(i, None if got is None else got.token))

    @property
    def ends_by_itself(self) -> bool:  # type: ignore[override]  # the base's class constant, computed here
        """Every value's searcher runs out (a value with nothing to tune is proposed again and again)."""
        return all(inner is not None and inner.ends_by_itself for inner in self.inner)

    def tell(self, outcome: Outcome) -> None:
        i = self._level_of(outcome.params)
        if i is None:
            return  # a configuration from outside this round's levels (an edited study): not ours
        if outcome.token is None:
            self.counts[i] += 1  # replayed from the store: it used one of this value's turns
            inner_token = None
        else:
            inner_token = outcome.token[1]
        inner = self.inner[i]
        if inner is not None:
            rest = {k: v for k, v in outcome.params.items() if k not in self.scientific}
            inner.tell(replace(outcome, params=rest, token=inner_token))

    def reseed(self) -> bool:
        reseeded = [inner.reseed() for inner in self.inner if inner is not None]  # every one, not the first only
        return any(reseeded)

    def observe(self, prior: Outcome) -> bool:
        """A prior goes to its scientific value's searcher; it takes none of that value's turns."""
        i = self._level_of(prior.params)
        inner = None if i is None else self.inner[i]
        if inner is None:
            return False
        rest = {k: v for k, v in prior.params.items() if k not in self.scientific}
        return inner.observe(replace(prior, params=rest, token=None, lineage=None))

    def _level_of(self, params: Mapping[str, Any]) -> int | None:
        key = _key({n: params.get(n) for n in self.scientific})
        return self._keys.index(key) if key in self._keys else None


def _key(level: Mapping[str, Any]) -> str:
    return json.dumps(level, sort_keys=True, default=str)
