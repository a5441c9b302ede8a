"""One study as its page and its report draw it: trials, history, effects, importance, curves,
seed bands, checks, rounds and finalize panels; and its ``tuneloop analyze`` findings."""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from tuneloop.analysis import band, history, param_effects, seed_groups
from tuneloop.analysis._study import _all_params
from tuneloop.export import strict_json
from tuneloop.store import Store, StudyRecord, TrialRecord, TrialState
from tuneloop.views._background import BACKGROUND, Background
from tuneloop.views._decimate import decimate
from tuneloop.views._front import feasibility, objectives_view
from tuneloop.views._rounds import final_view, rounds_view
from tuneloop.views._table import done_columns
from tuneloop.views._trial import trial_row
from tuneloop.views._worker import importance_in_worker, importance_or_nothing

TOP_CURVES = 10  # learning curves shown by default: the best trials


def study_view(store: Store, name: str, *, wait: bool = True) -> dict[str, Any]:
    """One study: every trial as a row and the data of every study plot (the report, ``tuneloop
    export`` style callers). ``wait=False`` answers at once without the study-wide analyses still
    computing in the background (``importance_status`` says which: ready, stale with when it was
    computed, or computing). The dashboard asks for :func:`study_response` instead, and for its
    table's rows a page at a time (:func:`~tuneloop.views.trials_page_view`)."""
    view, _, record, trials = _response(store, name, wait=wait, look=True)
    objectives = record.objectives
    return {**view, "trials": strict_json([{**trial_row(t), **feasibility(objectives, t)} for t in trials])}


def study_response(store: Store, name: str, *, wait: bool = True) -> tuple[dict[str, Any], str]:
    """:func:`study_view` without the trials' rows (the table asks for a page at a time: ``counts`` says
    how many per state; the completed trials' ``done`` columns feed the plots), and a tag that changes
    whenever the view does (the dashboard's ETag: a poll of an unchanged study is answered "not
    modified", without building or sending its JSON).

    The parts drawn from the trials (history, effects, columns, curves, seed bands, fronts) are kept per
    study, keyed by :meth:`Store.trials_mark`: a poll reads that key in two cheap queries. A change of a
    trial row recomputes them in the background: ``wait=False`` answers meanwhile with the last ones
    (``trials_status``: stale), so a live study of thousands of trials polls in milliseconds and shows a
    new trial one poll later. Checks, rounds and the final panel are read every time."""
    view, tag, _, _ = _response(store, name, wait=wait, look=True)
    return view, tag


def prepare(store: Store, name: str) -> None:
    """Compute a study's view ahead of its first look (a server's start), without counting as that
    look: the first request still answers with the study as it is then."""
    _response(store, name, wait=False, look=False)


# the slots a caller has looked at: a first look waits for the study as it is, later polls do not
_LOOKED: set[tuple[str, int, str]] = set()


def _response(store: Store, name: str, *, wait: bool,
              look: bool) -> tuple[dict[str, Any], str, StudyRecord, list[TrialRecord]]:
    record = store.require_study(name)
    mark = store.trials_mark(record.id)
    slot = (store.url, record.id, "trials")
    first = look and slot not in _LOOKED
    if look:
        _LOOKED.add(slot)
    # the first look at a study waits; later polls answer with the last parts while a change recomputes
    # a warm-up (not a look) computes on its own thread: a user's first look at another study never queues behind it
    (part, trials, done, top), parts_status = PARTS.get(slot, mark, 0, lambda: _trials_part(store, record),
                                                        wait=wait or first or not PARTS.known(slot), raises=True,
                                                        here=not look)
    importance_values, importance_status = _importance(store, record, trials, done, _key(store, record, done), wait)
    light = strict_json({"importance": importance_values, "importance_status": importance_status,
                         "checks": _checks_view(store, record, done, top), "rounds": rounds_view(store, record),
                         "final": final_view(store, record)})
    tag = hashlib.sha256(json.dumps([parts_status["computed_at"], light], sort_keys=True, default=str).encode())
    return {**part, **light, "trials_status": {"state": parts_status["state"]}}, tag.hexdigest()[:32], record, trials


# a thread of its own (the trial-drawn parts never wait behind an importance fit); 16 studies at most:
# each entry holds its study's trials, megabytes for a big one
PARTS = Background(max_entries=16)


def _trials_part(store: Store, record: StudyRecord) -> tuple[dict[str, Any], list[TrialRecord], list[TrialRecord],
                                                              TrialRecord | None]:
    """Everything of the study view drawn from its trials, with the trials, the completed ones and the best."""
    objectives = record.objectives  # a StorageError when the stored ones are malformed (a forged database)
    trials = store.trials(record.id)
    done = [t for t in trials if t.state == TrialState.COMPLETED and t.value is not None and math.isfinite(t.value)]
    best = objectives.ranked(trials)[:TOP_CURVES]  # feasible trials first
    top = objectives.best(trials)
    groups = seed_groups(trials)
    ids = {t.id for t in best} | {i for g in groups for i in g["ids"]}
    curves = store.series(sorted(ids), names=[record.metric]) if ids else {}
    for g in groups:
        g["band"] = band([curves.get(i, {}).get(record.metric, []) for i in g.pop("ids")])
    steps = history(trials, record.mode, objectives)  # the best so far counts feasible trials only
    part = strict_json({
        "study": {"name": record.name, "metric": record.metric, "mode": record.mode,
                  "seed": record.config.get("seed"), "space": record.space.to_json(),
                  "best": top.number if top else None},
        **objectives_view(record, trials, _key(store, record, trials)),
        "counts": {"total": len(trials), "states": dict(sorted(Counter(t.state.value for t in trials).items()))},
        # pinned to several GPUs: the table says which (a forged list or dict as a device counts by its text)
        "devices": len({d if isinstance(d, (str, int, float, type(None))) else repr(d)
                        for d in (t.attrs.get("device") for t in trials)}) > 1,
        "done": done_columns(record, done, list(_all_params(record.space))),
        "history": steps,
        # per parameter its kind, bounds and warning ("best trials": feasible ones first); the points are the
        # done columns' (1.35 MB fewer at 10,000 trials than a copy per parameter)
        "effects": [{k: v for k, v in e.items() if k not in ("x", "y")}
                    for e in param_effects(record.space, trials, record.mode, objectives)],
        # the best trials first (a list: JavaScript would reorder number-like keys)
        "curves": [{"number": t.number, "points": decimate(curves.get(t.id, {}).get(record.metric, []))} for t in best],
        "groups": groups,
    })
    return part, trials, done, top


def _checks_view(store: Store, record: StudyRecord, done: Sequence[TrialRecord],
                 top: TrialRecord | None) -> dict[str, Any]:
    """The latest check ladder and baselines, and how far the study's best is above the best baseline."""
    found = store.latest_checks(record.id)
    scores = found["baselines"]
    found["versus"] = None
    if scores and done and top is not None and top.value is not None:
        lower_is_better = (found["metric"] or "").endswith("mse")
        name, score = (min if lower_is_better else max)(scores.items(), key=lambda kv: kv[1])
        best = top.value  # the best feasible trial's
        found["versus"] = {"baseline": name, "baseline_score": score, "study_best": best, "margin": best - score}
    return found


def _key(store: Store, record: StudyRecord, trials: Sequence[TrialRecord]) -> tuple[str, int, int, float]:
    """What changes when the study's finished trials do: the page polls, the costly panels are
    recomputed only then."""
    return store.url, record.id, len(trials), max((t.finished_at or 0.0 for t in trials), default=0.0)


def _importance(store: Store, record: StudyRecord, trials: Sequence[TrialRecord], done: Sequence[TrialRecord],
                key: tuple[str, int, int, float], wait: bool) -> tuple[dict[str, float], dict[str, Any]]:
    """fANOVA importance, computed in the background when the completed trials change (the page polls):
    for the dashboard (``wait=False``) in a worker process, so the fit never holds the server's
    interpreter; for a report in this one (no process to start). Both give the same values."""

    def compute() -> dict[str, float]:
        if wait:
            return importance_or_nothing(record.space, trials, record.mode)
        return importance_in_worker(record.space, done, record.mode)

    return BACKGROUND.get((store.url, record.id, "importance"), key, len(done), compute, wait=wait, empty={})


def analysis_view(store: Store, name: str) -> dict[str, Any]:
    """Every ``tuneloop analyze`` finding of a study (the analysis tab and the report's section)."""
    from tuneloop.analysis import analyze
    from tuneloop.analysis._data_probe import DataResult, data_plot
    from tuneloop.analysis._probes import stored_probes

    findings = [f.to_dict() for f in analyze(store, name)]
    data = stored_probes(store, name).get("data")
    return strict_json({"study": {"name": name}, "findings": findings,
                        "more_data": data_plot(data if isinstance(data, DataResult) else None)})
