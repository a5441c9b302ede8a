"""Which configurations to finalize: the best by tuning results, seed repeats pooled.

With one objective and no constraints: the best mean objective. With constraints, a configuration
any of whose runs broke one is never finalized. With several objectives: the members of the front
of configurations (each one's mean over its repeats), best first by the primary objective, or as a
pick rule (``"max val_acc where latency_ms <= 2"``, or a function of the front) orders them.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from tuneloop.analysis import MeanCI, mean_ci
from tuneloop.direction import Direction
from tuneloop.errors import ConfigError, TrialFailed, TuneloopError
from tuneloop.objectives import Objectives, finite
from tuneloop.store import TrialRecord, TrialState

Pick = str | Callable[[list[TrialRecord]], Any]


@dataclass(frozen=True)
class Candidate:
    """A configuration chosen for finalizing, with the tuning evidence that chose it."""

    rank: int
    params: dict[str, Any]
    source: list[int]  # the tuning trials (numbers) that ran it
    tuned: MeanCI  # their objective values
    best_step: int | None  # where retrospective selection put the best epoch (median over seeds)
    study: str = ""  # the round the trials belong to (finalizing a goal's rounds together)
    objectives: dict[str, MeanCI] = field(default_factory=dict)  # every objective's tuning values (several)


def top_configs(trials: Sequence[TrialRecord], mode: str, top: int,
                curves: Mapping[int, list[tuple[int, float]]], study: str = "", per: str | None = None,
                rounds: Mapping[int, str] | None = None, objectives: Objectives | None = None,
                pick: Pick | None = None) -> list[Candidate]:
    """The ``top`` configurations by mean objective over their completed runs (repeats of one
    configuration under ``--seeds`` count as one), best first; with ``per``, the ``top`` of each
    value of that parameter (a scientific one: each value's best, compared on test). ``rounds``
    maps trial ids to their study when the trials come from several rounds of a goal. With
    ``objectives`` holding several objectives or constraints, or with ``pick``: the feasible
    configurations' front, ordered as the module docstring says."""
    way = Direction.of(mode, "top_configs")
    if per is not None:
        values = list(dict.fromkeys(json.dumps(t.params.get(per)) for t in trials if per in t.params))
        if not values:
            raise ConfigError(f"No trial of {study!r} has a parameter {per!r}; --per takes a parameter name.")
        chosen = [c for v in values for c in top_configs(
            [t for t in trials if json.dumps(t.params.get(per)) == v], mode, top, curves, study, rounds=rounds,
            objectives=objectives, pick=pick)]
        chosen = way.sorted(chosen, key=lambda c: c.tuned.mean)
        return [replace(c, rank=i) for i, c in enumerate(chosen, start=1)]
    if objectives is not None and (objectives.multi or objectives.constraints or pick is not None):
        chosen_groups = _on_front(trials, objectives, top, study, pick)
        primary = objectives.primary.name
        names = objectives.names
    else:
        groups: dict[str, list[TrialRecord]] = {}
        for t in trials:
            if t.state == TrialState.COMPLETED and t.value is not None:
                groups.setdefault(_key(t.params), []).append(t)
        if not groups:
            raise _nothing_to_finalize(trials, study)
        scored = way.sorted(groups.values(), key=lambda g: mean_ci([t.value for t in g if t.value is not None]).mean)
        chosen_groups, primary, names = scored[:top], "", []
    out = []
    for rank, group in enumerate(chosen_groups, start=1):
        ci = mean_ci([(t.values[primary] if primary else t.value) for t in group])  # type: ignore[misc]
        # a cross-validated objective is reported per fold, not per epoch: no epoch to select
        steps = [] if any("folds" in t.values for t in group) else [_best_step(curves.get(t.id, []), way) for t in group]
        known = [s for s in steps if s is not None]
        home = (rounds or {}).get(group[0].id, study)
        same = [t for t in group if (rounds or {}).get(t.id, study) == home]  # numbers name trials of one study
        out.append(Candidate(rank, dict(group[0].params), sorted(t.number for t in same), ci,
                             int(statistics.median_low(known)) if known else None, home,
                             {n: mean_ci([t.values[n] for t in group]) for n in names}))
    return out


def _on_front(trials: Sequence[TrialRecord], objectives: Objectives, top: int, study: str,
              pick: Pick | None) -> list[list[TrialRecord]]:
    """The runs of each configuration to finalize, best first: the configurations whose every
    completed run kept the constraints, pooled (each one's mean values), then the ``pick`` rule's
    order over their front; without one, the front by the primary objective (with one objective:
    every feasible configuration, best first)."""
    from tuneloop.picking import pick_all

    groups: dict[str, list[TrialRecord]] = {}
    for t in objectives.completed(trials):
        groups.setdefault(_key(t.params), []).append(t)
    if not groups:
        raise _nothing_to_finalize(trials, study)
    kept = [g for g in groups.values() if all(objectives.feasible(t.values) for t in g)]
    if not kept:
        broken = Counter(str(c) for g in groups.values() for t in g for c in objectives.broken(t.values))
        worst = ", ".join(f"{c} ({n} runs)" for c, n in broken.most_common(3))
        raise TuneloopError(f"No configuration of {study!r} kept its constraints in every run, and an infeasible "
                            f"configuration is never finalized: the {len(groups)} completed ones broke {worst}. Run "
                            f"more trials or loosen the constraints.")
    pooled = [_pooled(g, objectives) for g in kept]
    group_of = {id(p): g for p, g in zip(pooled, kept, strict=True)}
    if pick is not None:
        order = pick_all(objectives.front(pooled), pick, study)
    else:
        front = {id(p) for p in objectives.front(pooled)}
        order = [p for p in objectives.ranked(pooled) if not objectives.multi or id(p) in front]
    chosen = list({id(p): group_of[id(p)] for p in order}.values())  # a pick function may name one twice
    return chosen[:top]


def _pooled(group: list[TrialRecord], objectives: Objectives) -> TrialRecord:
    """One configuration's runs as one trial (its first run, with the mean of every metric all runs
    report): what the front, rankings and pick rules see of a configuration repeated over seeds."""
    if len(group) == 1:
        return group[0]
    names = sorted(set.intersection(*(set(t.values) for t in group)))
    means = {n: statistics.fmean(float(t.values[n]) for t in group) for n in names
             if all(_finite(t.values[n]) for t in group)}
    return replace(group[0], values=means, value=means.get(objectives.primary.name))


def _key(params: Mapping[str, Any]) -> str:
    return json.dumps(params, sort_keys=True)


def _finite(value: Any) -> bool:
    return finite(value) is not None


def _nothing_to_finalize(trials: Sequence[TrialRecord], study: str) -> TuneloopError:
    """Why a study has no completed trial: it has not run (a TuneloopError), or every trial that
    ended failed or diverged (TrialFailed, carrying the last one's traceback)."""
    finished = [t for t in trials if t.state.finished]
    if not finished or any(t.state not in (TrialState.FAILED, TrialState.DIVERGED) for t in finished):
        return TuneloopError(f"Study {study!r} has no completed trial to finalize; run it first (tuneloop run FILE).")
    last = max(finished, key=lambda t: t.number)
    why = (last.error or "").strip().splitlines() or [str(last.state)]
    return TrialFailed(f"Study {study!r} has no completed trial to finalize: all {len(finished)} of its finished trials "
                       f"failed or diverged (the last, trial {last.number}: {why[-1][:200]}). Fix the "
                       f"trial function and run the study again; tuneloop show {study} {last.number} shows the "
                       f"traceback.", traceback=last.error or "")


def _best_step(curve: Sequence[tuple[int, float]], mode: Direction) -> int | None:
    """The step of the best reported value (ties: the earliest), or None without reports."""
    curve = [(s, v) for s, v in curve if math.isfinite(v)]
    if not curve:
        return None
    best_step, best_value = curve[0]
    for step, value in curve[1:]:
        if mode.better(value, best_value):
            best_step, best_value = step, value
    return best_step
