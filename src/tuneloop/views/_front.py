"""What a study optimizes, as its page and report draw it: objectives, constraints, each trial's
feasibility, the Pareto front and the hypervolume over finished trials.

A study with one objective and no constraints keeps its single-metric view: these functions then
return empty lists and None, and the ranking helpers fall back to the trial's stored value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from tuneloop.objectives import Objectives, hypervolume, hypervolume_history
from tuneloop.store import StudyRecord, TrialRecord, TrialState

_FINISHED = (TrialState.COMPLETED, TrialState.PRUNED, TrialState.FAILED, TrialState.DIVERGED)


def plain(objectives: Objectives) -> bool:
    """One objective and no constraints: the study's stored value ranks its trials, as before objectives."""
    return not objectives.multi and not objectives.constraints


def feasibility(objectives: Objectives, trial: TrialRecord) -> dict[str, Any]:
    """``feasible``: whether a completed trial keeps every constraint (None for a trial that did not
    complete: its values are not final); ``broken``: the constraints it breaks, as text."""
    if trial.state != TrialState.COMPLETED:
        return {"feasible": None, "broken": []}
    broken = objectives.broken(trial.values)
    return {"feasible": not broken, "broken": [str(c) for c in broken]}


def ranked(objectives: Objectives, trials: Sequence[TrialRecord]) -> list[TrialRecord]:
    """Completed trials best first: by stored value for a plain study; else feasible first, then by
    Pareto layer and the primary objective (``Objectives.ranked``)."""
    if plain(objectives):
        done = [t for t in trials if t.state == TrialState.COMPLETED and t.value is not None and math.isfinite(t.value)]
        return objectives.primary.direction.sorted(done, key=lambda t: t.value)
    return objectives.ranked(trials)


def best(objectives: Objectives, trials: Sequence[TrialRecord]) -> TrialRecord | None:
    """The best trial a page names: a feasible one, never one breaking a constraint."""
    if plain(objectives):
        top = ranked(objectives, trials)
        return top[0] if top else None
    return objectives.best(trials)


def front_numbers(objectives: Objectives, trials: Sequence[TrialRecord]) -> list[int]:
    """The Pareto front's trial numbers, best first by the first objective (then the next ones)."""
    front = objectives.front(trials)
    return [t.number for t in sorted(front, key=lambda t: (objectives.loss(t.values), t.number))]


_HISTORY: dict[tuple[Any, ...], dict[str, Any] | None] = {}
MAX_POINTS = 100  # hypervolumes drawn at most: past that many finished trials, at evenly spread ones


def thinned_history(objectives: Objectives, trials: Sequence[TrialRecord], reference: Sequence[float],
                    at: Sequence[int]) -> list[float]:
    """The hypervolume after each trial index in ``at`` (ascending), in the order of ``trials``:
    ``hypervolume_history`` computes one after every trial, which a long study with a large 3-objective
    front makes take seconds (each is a full WFG); here the front is kept incrementally (numpy) and
    measured only at the indices asked, and again only when it changed."""
    import numpy as np

    ref = [o.direction.sign * float(r) for o, r in zip(objectives.items, reference, strict=True)]
    front = np.empty((0, len(ref)))
    wanted, out, last, changed = set(at), [], 0.0, False
    for i, t in enumerate(trials):
        point = objectives.loss(t.values) if t.state == TrialState.COMPLETED and objectives.feasible(t.values) else None
        if point is not None and not (front <= np.asarray(point)).all(axis=1).any():  # not dominated, no duplicate
            p = np.asarray(point)
            front = np.vstack([front[~((p <= front).all(axis=1) & (p < front).any(axis=1))], p])
            changed = True
        if i in wanted:
            if changed:
                last, changed = hypervolume(front.tolist(), ref), False
            out.append(last)
    return out


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
        values = (hypervolume_history(objectives, finished, reference) if n <= MAX_POINTS
                  else thinned_history(objectives, finished, reference, at))
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
        "objectives": [{"name": o.name, "direction": o.direction.value} for o in objectives.items],
        "constraints": [{"metric": c.metric, "op": c.op, "bound": c.bound} for c in objectives.constraints],
        "judge": str(objectives.judged),
        "front": front_numbers(objectives, trials) if objectives.multi else [],
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
