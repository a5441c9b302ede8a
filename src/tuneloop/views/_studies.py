"""The store's studies, and one study's trials listed: what ``tuneloop status``/``trials`` and the
dashboard's first page draw."""

from __future__ import annotations

from typing import Any

from tuneloop.export import strict_json
from tuneloop.store import Store, StudyRecord, TrialRecord, TrialState


def studies_view(store: Store) -> dict[str, Any]:
    """Every study: trials by state, best value, last activity."""
    return strict_json({"studies": [
        {"name": s.name, "metric": s.metric, "mode": s.mode, "counts": s.counts, "n_trials": s.n_trials,
         "best": s.best_value, "last_activity": s.last_activity} for s in store.studies()]})


def trials_of(store: Store, name: str, *, state: str | None = None,
              sort: str = "number") -> tuple[StudyRecord, list[TrialRecord]]:
    """Study ``name`` and its trials (only those in ``state``, when given), by number or by value.

    ``sort="value"``: completed trials first (their values are final), best first; then the rest."""
    record = store.require_study(name)
    trials = store.trials(record.id, states=[state] if state else None)
    if sort == "value":
        sign = -1 if record.mode == "max" else 1
        trials = sorted(trials, key=lambda t: (t.state != TrialState.COMPLETED, t.value is None,
                                               sign * (t.value or 0.0)))
    return record, trials
