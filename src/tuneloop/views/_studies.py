"""The store's studies, and one study's trials listed: what ``tuneloop status``/``trials`` and the
dashboard's first page draw."""

from __future__ import annotations

import math
from typing import Any

from tuneloop.errors import StorageError
from tuneloop.export import strict_json
from tuneloop.objectives import Objectives
from tuneloop.store import Store, StudyRecord, TrialRecord


def studies_view(store: Store) -> dict[str, Any]:
    """Every study: its objectives, trials by state, best value, last activity.

    A constrained study's best is its best feasible trial's value (the store's summary takes the best
    of any completed trial). A study whose stored objectives are malformed is listed with its metric
    alone; its own page says what is wrong."""
    try:
        configs = store.study_configs()
    except StorageError:  # a forged config: the list still shows every study, each page tells
        configs = {}
    rows = []
    for s in store.studies():
        objectives, best = None, s.best_value
        try:
            objectives = Objectives.from_config(configs.get(s.name, {}), s.metric, s.mode)
            if objectives.constraints:
                top = objectives.best(store.trials(store.require_study(s.name).id, states=["completed"]))
                best = None if top is None else top.value
        except (ValueError, StorageError):
            best = None if objectives is not None and objectives.constraints else best
        rows.append({"name": s.name, "metric": s.metric, "mode": s.mode,
                     "objectives": [{"name": o.name, "direction": o.direction.value} for o in objectives.items]
                     if objectives is not None else [{"name": s.metric, "direction": s.mode.value}],
                     "counts": s.counts, "n_trials": s.n_trials, "best": best, "last_activity": s.last_activity})
    return strict_json({"studies": rows})


def trials_of(store: Store, name: str, *, state: str | None = None,
              sort: str = "number") -> tuple[StudyRecord, list[TrialRecord]]:
    """Study ``name`` and its trials (only those in ``state``, when given), by number or by value.

    ``sort="value"``: completed trials first (their values are final), best first; then the rest.
    With several objectives or constraints, best first is ``Objectives.ranked``: feasible trials
    first, then by Pareto layer and the primary objective."""
    record = store.require_study(name)
    objectives = record.objectives
    trials = store.trials(record.id, states=[state] if state else None)
    if sort == "value":
        first = objectives.ranked(trials)
        chosen = {t.number for t in first}
        sign = objectives.primary.direction.sign  # the rest: those with a value (pruned...) by it, then the others
        rest = sorted((t for t in trials if t.number not in chosen),
                      key=lambda t: (t.value is None or not math.isfinite(t.value), sign * (t.value or 0.0)))
        trials = first + rest
    return record, trials
