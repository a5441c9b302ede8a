"""Warm start: earlier studies' finished trials fed to a searcher as prior observations.

``Study(..., warm_start=["round1"])``, and every round built by ``next_round`` (so every file
``tuneloop refine`` writes) from its parent chain, hands the searcher what earlier rounds learned:
their completed and pruned trials whose parameters are a point of the new space (fixed parameters
included, so a round that fixes ``act="relu"`` learns only from ReLU trials). A prior is never a
trial of this study: it is not stored with it, not counted in ``n_trials`` and not shown among its
trials; the study's config records how many each earlier study gave.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tuneloop.errors import ConfigError
from tuneloop.search._base import Outcome, Searcher
from tuneloop.space import Space
from tuneloop.store import StudyRecord, TrialState

if TYPE_CHECKING:
    from tuneloop.store import Store

_LEARNED = (TrialState.COMPLETED.value, TrialState.PRUNED.value)  # what a model can learn from


@dataclass
class Priors:
    """One earlier study's trials that fit the new space, and how many finished ones did not."""

    source: str
    outcomes: list[Outcome] = field(default_factory=list)
    outside: int = 0


def load_priors(store: Store, study: StudyRecord, names: Sequence[str], space: Space, *,
                optional: bool = False) -> list[Priors]:
    """The priors each study in ``names`` offers ``study`` (same store, same metric and mode).
    ``optional``: a name missing from the store is skipped (a round's parent chain run elsewhere)
    instead of refused."""
    out = []
    for name in dict.fromkeys(names):  # each earlier study once, in the order given
        if name == study.name:
            raise ConfigError(f"Study {name!r} cannot warm start from itself; warm_start names earlier studies.")
        source = store.get_study(name)
        if source is None:
            if optional:
                continue
            raise ConfigError(f"warm_start names {name!r}, which is not a study in {store.url}; tuneloop status "
                              f"lists the studies there.")
        if source.objectives.items != study.objectives.items:
            raise ConfigError(f"warm_start study {name!r} optimizes {source.objectives.describe()}, this study "
                              f"{study.objectives.describe()}; only trials of the same objectives help.")
        out.append(_priors(store, source, study, space))
    return out


def _priors(store: Store, source: StudyRecord, study: StudyRecord, space: Space) -> Priors:
    priors = Priors(source.name)
    done = store.trials(source.id, states=_LEARNED)
    fits = []
    for t in done:
        try:
            space.validate(t.params)  # the stored params come from a database: checked, never trusted
        except (ConfigError, TypeError, ValueError):
            priors.outside += 1
            continue
        fits.append(t)
    metric, objectives = study.metric, study.objectives  # this study's constraints judge the earlier trials
    curves = store.series([t.id for t in fits], names=[metric]) if fits else {}
    for t in fits:
        priors.outcomes.append(Outcome(dict(t.params), TrialState.of(t.state).value, t.value,
                                       curves.get(t.id, {}).get(metric, []), number=t.number,
                                       values=objectives.vector(t.values), violations=objectives.violations(t.values)))
    return priors


def feed(searcher: Searcher, priors: Sequence[Priors]) -> dict[str, int]:
    """Hand every prior to ``searcher.observe``; how many each earlier study's trials it took."""
    return {p.source: sum(searcher.observe(o) for o in p.outcomes) for p in priors}


def describe(fed: dict[str, int], priors: Sequence[Priors], searcher: str) -> str:
    """The line ``tuneloop run`` prints: ``warm start: 37 trials from round1 fed to tpe``."""
    offered = {p.source: len(p.outcomes) for p in priors}
    if not priors:
        return "warm start: none of the earlier studies is in this store"
    if offered and not any(fed.values()):
        if not any(offered.values()):
            return "warm start: no finished trial of " + ", ".join(offered) + " fits this space"
        return f"warm start: {searcher} does not learn from earlier trials; {sum(offered.values())} were not used"
    parts = [f"{n} trial{'s' if n != 1 else ''} from {name}" for name, n in fed.items()]
    return f"warm start: {', '.join(parts)} fed to {searcher}"


def searcher_name(spec: Any) -> str:
    """How a searcher spec reads in messages: its name, or its class's."""
    if isinstance(spec, str):
        return spec
    if isinstance(spec, dict) and isinstance(spec.get("name"), str):
        return str(spec["name"])
    return type(spec).__name__
