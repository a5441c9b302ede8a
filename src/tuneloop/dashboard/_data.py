"""JSON-ready views of the store: what the dashboard's API serves and the report embeds.

Strings are returned as they are stored; the pages escape them (they only ever set
``textContent``), so a study named ``<script>`` shows as text wherever it appears.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tuneloop.analysis import band, history, importance, param_effects, seed_groups
from tuneloop.errors import TuneloopError
from tuneloop.export import strict_json
from tuneloop.store import Store, StudyRecord, TrialRecord

TOP_CURVES = 10  # learning curves shown by default: the best trials


def _trial_row(t: TrialRecord) -> dict[str, Any]:
    return {"number": t.number, "state": t.state, "value": t.value, "params": t.params, "values": t.values,
            "seed": t.seed, "attempt": t.attempt, "duration": t.duration, "finished_at": t.finished_at,
            "error": (t.error or "").split("\n", 1)[0] or None}


def studies_view(store: Store) -> dict[str, Any]:
    """Every study: trials by state, best value, last activity."""
    return strict_json({"studies": [
        {"name": s.name, "metric": s.metric, "mode": s.mode, "counts": s.counts, "n_trials": s.n_trials,
         "best": s.best_value, "last_activity": s.last_activity} for s in store.studies()]})


def study_view(store: Store, name: str) -> dict[str, Any]:
    """One study: its trials and the data of every study plot."""
    record = store.require_study(name)
    trials = store.trials(record.id)
    done = [t for t in trials if t.state == "completed" and t.value is not None and math.isfinite(t.value)]
    best = sorted(done, key=lambda t: t.value, reverse=record.mode == "max")[:TOP_CURVES]
    groups = seed_groups(trials)
    ids = {t.id for t in best} | {i for g in groups for i in g["ids"]}
    curves = store.series(sorted(ids), names=[record.metric]) if ids else {}
    for g in groups:
        g["band"] = band([curves.get(i, {}).get(record.metric, []) for i in g.pop("ids")])
    return strict_json({
        "study": {"name": record.name, "metric": record.metric, "mode": record.mode,
                  "seed": record.config.get("seed"), "space": record.space.to_json(),
                  "best": best[0].number if best else None},
        "trials": [_trial_row(t) for t in trials],
        "history": history(trials, record.mode),
        "effects": param_effects(record.space, trials, record.mode),
        "importance": _importance(store, record, trials, done),
        # the best trials first (a list: JavaScript would reorder number-like keys)
        "curves": [{"number": t.number, "points": curves.get(t.id, {}).get(record.metric, [])} for t in best],
        "groups": groups,
        "checks": _checks_view(store, record, done),
        "rounds": _rounds_view(store, record),
        "final": _final_view(store, record),
    })


def _rounds_view(store: Store, record: StudyRecord) -> dict[str, Any]:
    """The goal's chain of rounds (this one marked) and this round's roles."""
    from tuneloop.rounds import chain, round_info

    if record.config.get("kind") == "final":
        return {"goal": None, "items": [], "roles": None, "final_of": record.config.get("parent")}
    info = round_info(record)
    items = [{"round": r.round, "study": r.study, "current": r.study == record.name} for r in chain(store, record.name)]
    return {"goal": info.goal, "items": items, "roles": info.roles.to_json(), "final_of": None}


def _final_view(store: Store, record: StudyRecord) -> dict[str, Any] | None:
    """The latest finalize of this study (or this final study itself): test mean and CI per config."""
    from tuneloop.finalize import latest_final, read_final

    final = record if record.config.get("kind") == "final" else latest_final(store, record.name)
    if final is None:
        return None
    result = read_final(store, final.name)
    return {"study": result.final_study, "metric": result.metric, "tuned_metric": result.tuned_metric,
            "fit_on": result.fit_on, "seeds": result.seeds, "look": result.look,
            "configs": [{"rank": c.rank, "params": c.params, "tuned": c.tuned.mean, "epochs": c.epochs,
                         "values": c.values, "test": None if c.test is None else c.test.to_dict(),
                         "versus": None if c.versus_first is None else c.versus_first.to_dict()}
                        for c in result.configs]}


def _checks_view(store: Store, record: StudyRecord, done: Sequence[TrialRecord]) -> dict[str, Any]:
    """The latest check ladder and baselines, and how far the study's best is above the best baseline."""
    found = store.latest_checks(record.id)
    scores = found["baselines"]
    found["versus"] = None
    if scores and done:
        lower_is_better = (found["metric"] or "").endswith("mse")
        name, score = (min if lower_is_better else max)(scores.items(), key=lambda kv: kv[1])
        best = (min if record.mode == "min" else max)(t.value for t in done)
        found["versus"] = {"baseline": name, "baseline_score": score, "study_best": best, "margin": best - score}
    return found


_IMPORTANCE: dict[tuple[str, int, int, float], dict[str, float]] = {}


def _importance(store: Store, record: StudyRecord, trials: Sequence[TrialRecord],
                done: Sequence[TrialRecord]) -> dict[str, float]:
    """fANOVA importance, recomputed only when the completed trials change (the page polls)."""
    key = (store.url, record.id, len(done), max((t.finished_at or 0.0 for t in done), default=0.0))
    if key not in _IMPORTANCE:
        if len(_IMPORTANCE) > 64:
            _IMPORTANCE.clear()
        _IMPORTANCE[key] = importance(record.space, trials, record.mode)
    return _IMPORTANCE[key]


def trial_view(store: Store, name: str, number: int, *, inline_images: bool = False) -> dict[str, Any]:
    """One trial: curves, histograms over time, alerts, slices, samples, parameters, error."""
    record = store.require_study(name)
    t = store.trial(record.id, number)
    hist: dict[str, dict[str, list[Any]]] = {}
    for h in store.histograms(t.id, t.attempt):
        entry = hist.setdefault(h.name, {"step": [], "low": [], "high": [], "counts": [], "flag": []})
        for key, value in (("step", h.step), ("low", h.low), ("high", h.high), ("counts", h.counts), ("flag", h.flag)):
            entry[key].append(value)
    samples = []
    for s in store.samples(t.id, t.attempt):
        item: dict[str, Any] = {"step": s.step, "name": s.name, "kind": s.kind, "payload": s.payload}
        if s.path:
            if s.kind != "image":  # predictions: a download link, never inlined into a report
                item["url"] = None if inline_images else _artifact_url(name, s.path)
            else:
                item["url"] = _image_data(store.artifact_dir / s.path) if inline_images else _artifact_url(name, s.path)
        samples.append(item)
    return strict_json({
        "study": {"name": record.name, "metric": record.metric, "mode": record.mode},
        "trial": {**_trial_row(t), "error": t.error, "lineage": store.lineage(record.id).get(t.id)},
        "curves": store.series([t.id])[t.id],
        "histograms": hist,
        "alerts": [a.__dict__ for a in store.alerts(t.id, t.attempt)],
        "slices": [s.__dict__ for s in store.slices(t.id, t.attempt)],
        "samples": samples,
    })


def curves_view(store: Store, name: str, numbers: Sequence[int]) -> dict[str, Any]:
    """The objective's curve of each trial in ``numbers`` (the study page's selected trials)."""
    record = store.require_study(name)
    trials = store.trials(record.id, numbers=numbers)
    series = store.series([t.id for t in trials], names=[record.metric])
    return strict_json({"curves": [{"number": t.number, "points": series[t.id].get(record.metric, [])}
                                   for t in trials]})


def compare_view(store: Store, name: str, numbers: Sequence[int]) -> dict[str, Any]:
    """2-5 trials side by side: the parameters that differ, and every curve of each."""
    record = store.require_study(name)
    if not 2 <= len(numbers) <= 5:
        raise TuneloopError("Compare takes 2 to 5 trials, e.g. /compare/STUDY?trials=3,7,12.")
    trials = store.trials(record.id, numbers=numbers)
    missing = sorted(set(numbers) - {t.number for t in trials})
    if missing:
        raise TuneloopError(f"Study {name!r} has no trial {missing[0]}.")
    keys = sorted({k for t in trials for k in t.params})
    differ = [k for k in keys if len({repr(t.params.get(k)) for t in trials}) > 1]
    series = store.series([t.id for t in trials])
    return strict_json({"study": {"name": record.name, "metric": record.metric, "mode": record.mode},
                        "trials": [_trial_row(t) for t in trials], "differ": differ, "keys": keys,
                        "curves": {str(t.number): series[t.id] for t in trials}})


def _artifact_url(study: str, path: str) -> str:
    """The dashboard URL of an artifact: /artifacts/STUDY/<path inside the study's folder>."""
    inside = path.split("/", 1)[1] if "/" in path else path
    return f"/artifacts/{quote(study, safe='')}/{quote(inside)}"


def _image_data(path: Path) -> str | None:
    """A data: URL, so a report file carries its images."""
    try:
        return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()
    except OSError:
        return None


def ideas_view(store: Store) -> dict[str, Any]:
    """The ideas ledger: ranked ideas with their last verdict, the baseline chain, calibration."""
    from tuneloop.ideas import PRIORITY_FORMULA, Ledger, calibration

    ledger = Ledger(store)
    ideas = ledger.ideas()
    tests = {i.id: ledger.tests(i.id) for i in ideas}
    effects = {k: t[-1]["result"]["effect"] for k, t in tests.items() if t}
    return strict_json({
        "formula": PRIORITY_FORMULA,
        "ideas": [{**i.to_dict(), "priority": i.priority,
                   "verdict": tests[i.id][-1]["result"]["message"] if tests[i.id] else None} for i in ideas],
        "chain": ledger.baseline_chain(),
        "calibration": calibration(ideas, effects).to_dict(),
    })


def analysis_view(store: Store, name: str) -> dict[str, Any]:
    """Every ``tuneloop analyze`` finding of a study (the analysis tab and the report's section)."""
    from tuneloop.analysis import analyze

    return strict_json({"study": {"name": name}, "findings": [f.to_dict() for f in analyze(store, name)]})
