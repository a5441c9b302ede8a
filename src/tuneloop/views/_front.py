"""What a study optimizes, as its page and report draw it: objectives, constraints, each trial's
feasibility, the Pareto front and the hypervolume over finished trials.

A study with one objective and no constraints keeps its single-metric view: these functions then
return empty lists and None, and the ranking helpers fall back to the trial's stored value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from tuneloop.objectives import Objectives, hypervolume_history
from tuneloop.store import StudyRecord, TrialRecord, TrialState

_FINISHED = (TrialState.COMPLETED, TrialState.PRUNED, TrialState.FAILED, TrialState.DIVERGED)


def feasibility(objectives: Objectives, trial: TrialRecord) -> dict[str, Any]:
    """``feasible``: whether a completed trial keeps every constraint (None for a trial that did not
    complete: its values are not final); ``broken``: the constraints it breaks, as text."""
    if trial.state != TrialState.COMPLETED:
        return {"feasible": None, "broken": []}
    broken = objectives.broken(trial.values)
    return {"feasible": not broken, "broken": [str(c) for c in broken]}


_HISTORY: dict[tuple[Any, ...], dict[str, Any] | None] = {}
MAX_POINTS = 100  # hypervolumes drawn at most: past that many finished trials, at evenly spread ones


def hypervolume_view(objectives: Objectives, trials: Sequence[TrialRecord], key: tuple[Any, ...]) -> dict[str, Any] | None:
    """The hypervolume after each finished trial (at most ``MAX_POINTS`` of them, evenly spread), in
    the order they finished; None with one objective or before any feasible completed trial.
    ``reference``: the point it is measured from
    (each objective's worst feasible value, a tenth of its range further), in the objectives' units.
    ``key`` says when the trials changed: the page polls, and the history is recomputed only then."""
    if not objectives.multi:
        return None
    if key in _HISTORY:
        return _HISTORY[key]
    finished = sorted((t for t in trials if t.state in _FINISHED),
                      key=lambda t: (t.finished_at if t.finished_at is not None else math.inf, t.number))
    reference = objectives.reference(finished)
    view = None
    if reference is not None:
        n = len(finished)
        at = list(range(n)) if n <= MAX_POINTS else sorted({(j + 1) * n // MAX_POINTS - 1 for j in range(MAX_POINTS)})
        values = hypervolume_history(objectives, finished, reference, at=at)
        view = {"reference": reference, "order": "finished",
                "points": [[i + 1, v] for i, v in zip(at, values, strict=True)], "numbers": [finished[i].number for i in at]}
    if len(_HISTORY) > 64:
        _HISTORY.clear()
    _HISTORY[key] = view
    return view


def objectives_view(record: StudyRecord, trials: Sequence[TrialRecord], key: tuple[Any, ...]) -> dict[str, Any]:
    """The study view's objectives part: what it optimizes, the front and the hypervolume over time."""
    objectives = record.objectives
    return {
        **{k: v for k, v in objectives.to_json().items() if k != "prune_on"},
        "judge": str(objectives.judged),
        "front": [t.number for t in objectives.front_sorted(trials)] if objectives.multi else [],
        "hypervolume": hypervolume_view(objectives, trials, key),
    }


def trial_objectives_view(record: StudyRecord, trial: TrialRecord,
                          trials: Sequence[TrialRecord] | None) -> dict[str, Any]:
    """One trial's objective values and constraints (each with its value and whether it holds), its
    feasibility, and whether it is on the front (``trials``: the study's, for a multi-objective one)."""
    objectives = record.objectives
    values = trial.values
    return {
        "objectives": [{"name": o.name, "direction": o.direction.value, "value": values.get(o.name)}
                       for o in objectives.items],
        "constraints": [{"metric": c.metric, "op": c.op, "bound": c.bound, "value": values.get(c.metric),
                         "kept": c.violation(values) <= 0} for c in objectives.constraints],
        **feasibility(objectives, trial),
        "on_front": None if trials is None else trial.number in {t.number for t in objectives.front(trials)},
    }
