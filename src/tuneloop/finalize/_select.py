"""Which configurations to finalize: the best by tuning results, seed repeats pooled."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tuneloop.analysis import MeanCI, mean_ci
from tuneloop.direction import Direction
from tuneloop.errors import ConfigError, TrialFailed, TuneloopError
from tuneloop.store import TrialRecord, TrialState


@dataclass(frozen=True)
class Candidate:
    """A configuration chosen for finalizing, with the tuning evidence that chose it."""

    rank: int
    params: dict[str, Any]
    source: list[int]  # the tuning trials (numbers) that ran it
    tuned: MeanCI  # their objective values
    best_step: int | None  # where retrospective selection put the best epoch (median over seeds)
    study: str = ""  # the round the trials belong to (finalizing a goal's rounds together)


def top_configs(trials: Sequence[TrialRecord], mode: str, top: int,
                curves: Mapping[int, list[tuple[int, float]]], study: str = "", per: str | None = None,
                rounds: Mapping[int, str] | None = None) -> list[Candidate]:
    """The ``top`` configurations by mean objective over their completed runs (repeats of one
    configuration under ``--seeds`` count as one), best first; with ``per``, the ``top`` of each
    value of that parameter (a scientific one: each value's best, compared on test). ``rounds``
    maps trial ids to their study when the trials come from several rounds of a goal."""
    way = Direction.of(mode, "top_configs")
    if per is not None:
        values = list(dict.fromkeys(json.dumps(t.params.get(per)) for t in trials if per in t.params))
        if not values:
            raise ConfigError(f"No trial of {study!r} has a parameter {per!r}; --per takes a parameter name.")
        chosen = [c for v in values for c in top_configs(
            [t for t in trials if json.dumps(t.params.get(per)) == v], mode, top, curves, study, rounds=rounds)]
        chosen = way.sorted(chosen, key=lambda c: c.tuned.mean)
        return [Candidate(i, c.params, c.source, c.tuned, c.best_step, c.study) for i, c in enumerate(chosen, start=1)]
    groups: dict[str, list[TrialRecord]] = {}
    for t in trials:
        if t.state == TrialState.COMPLETED and t.value is not None:
            groups.setdefault(json.dumps(t.params, sort_keys=True), []).append(t)
    if not groups:
        raise _nothing_to_finalize(trials, study)
    scored = [(mean_ci([t.value for t in g if t.value is not None]), g) for g in groups.values()]
    scored = way.sorted(scored, key=lambda s: s[0].mean)
    out = []
    for rank, (ci, group) in enumerate(scored[:top], start=1):
        # a cross-validated objective is reported per fold, not per epoch: no epoch to select
        steps = [] if any("folds" in t.values for t in group) else [_best_step(curves.get(t.id, []), way) for t in group]
        known = [s for s in steps if s is not None]
        home = (rounds or {}).get(group[0].id, study)
        same = [t for t in group if (rounds or {}).get(t.id, study) == home]  # numbers name trials of one study
        out.append(Candidate(rank, dict(group[0].params), sorted(t.number for t in same), ci,
                             int(statistics.median_low(known)) if known else None, home))
    return out


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
