"""The data behind a study's plots: history, parameter effects with bounds, importance, seed groups.

Everything here is plain data (dicts and lists ready for JSON), computed from stored records, so
the dashboard, the report and tests draw or check the same numbers.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from typing import Any, TypedDict

from tuneloop.analysis._bounds import Crowding, crowded_bounds, position
from tuneloop.analysis._seeds import mean_ci
from tuneloop.direction import Direction
from tuneloop.objectives import Objectives
from tuneloop.space import Choice, Int, LogFloat, Space
from tuneloop.store import TrialRecord, TrialState


def history(trials: Sequence[TrialRecord], mode: str, objectives: Objectives | None = None) -> dict[str, list[Any]]:
    """Each finished trial's value in number order, and the best so far (with ``objectives``
    holding constraints: the best feasible so far, since an infeasible trial is never best)."""
    way = Direction.of(mode, "history")
    numbers, values, best, states = [], [], [], []
    current: float | None = None
    judged = objectives if objectives is not None and objectives.constraints else None  # no constraints: all feasible
    completed, pruned = TrialState.COMPLETED, TrialState.PRUNED
    maximize = way is Direction.MAX
    for t in trials:
        value, state = t.value, t.state
        if value is None or not math.isfinite(value) or state not in (completed, pruned):
            continue
        numbers.append(t.number)
        values.append(value)
        states.append(state)
        usable = judged is None or judged.feasible(t.values)  # pruned ones too: a hostile value raises alike
        if state == completed and usable and (current is None or (value > current if maximize else value < current)):
            current = value
        best.append(current)
    return {"number": numbers, "value": values, "best": best, "state": states}


def _position(param: Any, value: float) -> float:
    """Where ``value`` lies in the parameter's range, 0..1, on its own scale (log for log ones)."""
    return position(param, value)


def crowded(space: Space, trials: Sequence[TrialRecord], mode: str,
            objectives: Objectives | None = None) -> list[Crowding]:
    """The bounds the best region presses against (see :mod:`tuneloop.analysis._bounds` for the rule),
    judged from every completed trial; with ``objectives`` holding constraints or several objectives,
    "best" is their ranking: feasible trials first, the front first."""
    return _crowded(space, _done(trials), mode, objectives)


def _crowded(space: Space, done: list[TrialRecord], mode: str, objectives: Objectives | None) -> list[Crowding]:
    return crowded_bounds(_ranked(done, mode, objectives, "crowded"), _all_params(space))


def param_effects(space: Space, trials: Sequence[TrialRecord], mode: str,
                  objectives: Objectives | None = None) -> list[dict[str, Any]]:
    """Per parameter: (value, objective) of completed trials, its bounds, and a warning when the
    best region crowds a bound (:func:`crowded`: the objective still improves toward it). With
    ``objectives`` holding constraints or several objectives, "best" is their ranking: feasible
    trials first, the front first."""
    done = _done(trials)
    warnings_: dict[str, str] = {}
    for c in _crowded(space, done, mode, objectives):  # done already: crowded() would filter it again  # both sides of one parameter: one line each, joined
        warnings_[c.name] = f"{warnings_[c.name]}; {c.warning}" if c.name in warnings_ else c.warning
    out = []
    for name, param in _all_params(space).items():
        x, y = [], []
        for t in done:
            if name in t.params:
                x.append(t.params[name])
                y.append(t.value)
        entry: dict[str, Any] = {"name": name, "kind": param.type_name, "x": x, "y": y, "warning": None}
        if isinstance(param, Choice):
            entry["values"] = list(param.values)
        else:
            entry.update(low=param.low, high=param.high,
                         log=isinstance(param, LogFloat) or (isinstance(param, Int) and param.log))
            entry["warning"] = warnings_.get(name)
        out.append(entry)
    return out


def _ranked(done: list[TrialRecord], mode: str, objectives: Objectives | None, owner: str) -> list[TrialRecord]:
    """``done`` best first: by value; by ``objectives.ranked`` (feasible first) when it has constraints
    or several objectives."""
    if objectives is not None:
        return objectives.ranked(done)
    return Direction.of(mode, owner).sorted(done, key=lambda t: t.value)


def _done(trials: Sequence[TrialRecord]) -> list[TrialRecord]:
    """The completed trials with a finite value: the ones a ranking or a fit can use."""
    return [t for t in trials if t.state == TrialState.COMPLETED and t.value is not None and math.isfinite(t.value)]


def _all_params(space: Space) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, p in space.items():
        out[name] = p
        if isinstance(p, Choice):
            for child in p.children.values():
                out.update(_all_params(child))
    return out


IMPORTANCE_TREES = 32  # with depth 8: Optuna's default forest's shares (64 trees of depth 64) to within its own
IMPORTANCE_DEPTH = 8  # reseeding noise at 1/15 of its cost: benchmarks/importance_agreement.py measures it


def importance(space: Space, trials: Sequence[TrialRecord], mode: str, *, trees: int = IMPORTANCE_TREES,
               depth: int = IMPORTANCE_DEPTH, seed: int = 0) -> dict[str, float]:
    """Optuna's fANOVA importance over the completed trials ({} with fewer than 5 of them).

    The forest is smaller than Optuna's default (64 trees of depth 64), whose cost grows with the
    leaves of every tree: 30 s at 1,000 trials on one core, against 2 s for 32 trees of depth 8
    that give the same shares to within the default forest's own noise (``IMPORTANCE_TREES``)."""
    frozen = optuna_trials(space, trials)
    return fanova_shares(frozen, mode, trees=trees, depth=depth, seed=seed) if len(frozen) >= 5 else {}


def optuna_trials(space: Space, trials: Sequence[TrialRecord]) -> list[Any]:
    """The completed trials as Optuna's FrozenTrials (built once: a bootstrap resamples this list)."""
    from optuna.trial import create_trial

    return [create_trial(value=t.value, params=t.params, distributions=space.distributions(t.params))
            for t in _done(trials)]


def fanova_shares(frozen: Sequence[Any], mode: str, *, trees: int = IMPORTANCE_TREES, depth: int = IMPORTANCE_DEPTH,
                  seed: int = 0) -> dict[str, float]:
    """fANOVA shares of variance over ``frozen`` (FrozenTrials); {} when there is nothing to apportion."""
    way = Direction.of(mode, "importance")
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if way is Direction.MAX else "minimize")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.add_trials(frozen)
        try:
            result = get_param_importances(study, evaluator=FanovaImportanceEvaluator(n_trees=trees, max_depth=depth,
                                                                                      seed=seed))
        except (RuntimeError, ValueError):
            return {}  # e.g. every trial has the same value: nothing to apportion
    return {k: float(v) for k, v in result.items()}


def seed_groups(trials: Sequence[TrialRecord]) -> list[dict[str, Any]]:
    """Trials whose parameters are identical (they differ only by seed), two or more per group."""
    groups: dict[Any, list[TrialRecord]] = {}
    for t in trials:
        if t.state in (TrialState.COMPLETED, TrialState.PRUNED):
            groups.setdefault(_params_key(t.params), []).append(t)
    return [{"params": g[0].params, "trials": [t.number for t in g], "ids": [t.id for t in g]}
            for g in groups.values() if len(g) >= 2]


def _params_key(params: dict[str, Any]) -> Any:
    """What identifies a configuration: equal exactly when the JSON of the parameters is (1, 1.0 and True
    apart, -0.0 apart from 0.0, NaN equal to NaN), without writing JSON for each of 10,000 trials."""
    key: list[tuple[str, str, Any]] = []
    for name in sorted(params):
        v = params[name]
        if type(v) is float:
            key.append((name, "float", repr(v)))
        elif type(v) in (int, str, bool) or v is None:
            key.append((name, type(v).__name__, v))
        else:  # a list, a dict: its JSON
            return json.dumps(params, sort_keys=True)
    return tuple(key)


class Band(TypedDict):
    """A confidence band across curves: per shared step the mean and the interval, and the number of curves."""

    step: list[int]
    mean: list[float]
    low: list[float]
    high: list[float]
    n: int


def band(curves: Sequence[Sequence[tuple[int, float]]], confidence: float = 0.95) -> Band:
    """Mean and a t-based confidence interval across curves, step by step (steps all share)."""
    by_step: dict[int, list[float]] = {}
    for curve in curves:
        for step, value in curve:
            if math.isfinite(value):
                by_step.setdefault(step, []).append(value)
    steps = sorted(s for s, v in by_step.items() if len(v) == len(curves))
    cis = [mean_ci(by_step[s], confidence) for s in steps]
    return {"step": steps, "mean": [c.mean for c in cis], "low": [c.low for c in cis],
            "high": [c.high for c in cis], "n": len(curves)}
