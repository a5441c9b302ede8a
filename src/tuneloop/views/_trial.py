"""One trial (``tuneloop show``, the trial page, the report's best trial), a few trials' curves,
and 2-5 trials compared."""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tuneloop.analysis import CurveSummary, direction_of, summarize_curve
from tuneloop.errors import ConfigError, NotFound
from tuneloop.export import strict_json
from tuneloop.store import AlertRecord, HistogramRecord, SampleRecord, SliceRecord, Store, StudyRecord, TrialRecord
from tuneloop.views._decimate import decimate
from tuneloop.views._forecast import trial_forecast
from tuneloop.views._front import trial_objectives_view

SYSTEM = "sys/"  # system metrics (CPU, memory, GPU; run/_system.py): drawn apart from the training curves


def trial_row(t: TrialRecord) -> dict[str, Any]:
    """A trial as a row of a trials list (its error cut to the first line; the device it ran on)."""
    return {"number": t.number, "state": t.state, "value": t.value, "params": t.params, "values": t.values,
            "seed": t.seed, "attempt": t.attempt, "duration": t.duration, "finished_at": t.finished_at,
            "error": (t.error or "").split("\n", 1)[0] or None, "device": t.attrs.get("device")}


@dataclass(frozen=True)
class TrialData:
    """Everything stored about one trial's current attempt (records as stored, strings unescaped)."""

    study: StudyRecord
    trial: TrialRecord
    lineage: dict[str, Any] | None  # member, generation, parent, event: a trial sha or pbt continued
    curves: dict[str, list[tuple[int, float]]]
    alerts: list[AlertRecord]
    slices: list[SliceRecord]
    histograms: list[HistogramRecord]
    samples: list[SampleRecord]
    # each sample's stored path resolved inside the artifact folder; None where it leaves it (a forged row)
    files: dict[str, Path | None]


def trial_data(store: Store, name: str, number: int) -> TrialData:
    """Trial ``number`` of study ``name`` with its curves, alerts, slices, histograms and samples."""
    record = store.require_study(name)
    t = store.trial(record.id, number)
    samples = store.samples(t.id, t.attempt)
    return TrialData(study=record, trial=t, lineage=store.lineage(record.id).get(t.id),
                     curves=store.series([t.id])[t.id], alerts=store.alerts(t.id, t.attempt),
                     slices=store.slices(t.id, t.attempt), histograms=store.histograms(t.id, t.attempt),
                     samples=samples, files={s.path: store.find_artifact(s.path) for s in samples if s.path})


def curve_summaries(data: TrialData) -> list[CurveSummary]:
    """Each curve summarized (start, best, end, trend): the objective first, then the other epoch
    metrics, then per-step values and diagnostics; system metrics are :func:`system_summaries`'."""
    metric = data.study.metric
    declared = {o.name: o.direction for o in data.study.objectives.items}  # the study says which way each goes
    names = [n for n in data.curves if not n.startswith(SYSTEM) or n == metric]
    order = sorted(names, key=lambda n: (n not in declared, "/" in n or n.startswith(("init_", "grad_"))))
    return [summarize_curve(name, data.curves[name], declared.get(name) or direction_of(name)) for name in order]


@dataclass(frozen=True)
class SystemSummary:
    """One system metric over a trial: its samples, mean, peak and last value (at ``seconds``)."""

    name: str
    samples: int
    mean: float
    peak: float
    last: float
    seconds: int


def system_summaries(data: TrialData) -> list[SystemSummary]:
    """The system metrics sampled while the trial ran (CPU percent, RSS, GPU memory and utilisation)."""
    out = []
    for name in sorted(n for n in data.curves if n.startswith(SYSTEM)):
        values = [(s, v) for s, v in data.curves[name] if math.isfinite(v)]
        if values:
            out.append(SystemSummary(name, len(values), sum(v for _, v in values) / len(values),
                                     max(v for _, v in values), values[-1][1], values[-1][0]))
    return out


def trial_view(store: Store, name: str, number: int, *, inline_images: bool = False) -> dict[str, Any]:
    """One trial: curves, histograms over time, alerts, slices, samples, parameters, error, and the
    forecast of its objective curve (:func:`~tuneloop.views.trial_forecast`; None when none).

    ``inline_images``: images as data: URLs and no links to other files (a report file stands alone)."""
    data = trial_data(store, name, number)
    record, t = data.study, data.trial
    hist: dict[str, dict[str, list[Any]]] = {}
    for h in data.histograms:
        entry = hist.setdefault(h.name, {"step": [], "low": [], "high": [], "counts": [], "flag": []})
        for key, value in (("step", h.step), ("low", h.low), ("high", h.high), ("counts", h.counts), ("flag", h.flag)):
            entry[key].append(value)
    samples = []
    for s in data.samples:
        item: dict[str, Any] = {"step": s.step, "name": s.name, "kind": s.kind, "payload": s.payload}
        if s.path:
            file = data.files[s.path]
            if s.kind != "image":  # predictions: a download link, never inlined into a report
                item["url"] = None if inline_images else _artifact_url(s.path, file)
            else:
                item["url"] = _image_data(file) if inline_images else _artifact_url(s.path, file)
        samples.append(item)
    front_of = store.trials(record.id, states=["completed"]) if record.objectives.multi else None
    return strict_json({
        "study": {"name": record.name, "metric": record.metric, "mode": record.mode},
        "trial": {**trial_row(t), "error": t.error, "lineage": data.lineage, "attrs": t.attrs},
        **trial_objectives_view(record, t, front_of),
        "curves": {n: decimate(c) for n, c in data.curves.items() if not n.startswith(SYSTEM) or n == record.metric},
        "system": {n: decimate(c) for n, c in data.curves.items() if n.startswith(SYSTEM) and n != record.metric},
        "histograms": hist,
        "alerts": [a.__dict__ for a in data.alerts],
        "slices": [s.__dict__ for s in data.slices],
        "samples": samples,
        # running or pruned: where its objective curve is heading at the final step (None: no forecast)
        "forecast": trial_forecast(store, record, t, data.curves.get(record.metric, [])),
    })


def curves_view(store: Store, name: str, numbers: Sequence[int]) -> dict[str, Any]:
    """The objective's curve of each trial in ``numbers`` (the study page's selected trials)."""
    record = store.require_study(name)
    trials = store.trials(record.id, numbers=numbers)
    series = store.series([t.id for t in trials], names=[record.metric])
    return strict_json({"curves": [{"number": t.number, "points": decimate(series[t.id].get(record.metric, []))}
                                   for t in trials]})


def compare_view(store: Store, name: str, numbers: Sequence[int]) -> dict[str, Any]:
    """2-5 trials side by side: the parameters that differ, and every curve of each."""
    record = store.require_study(name)
    if not 2 <= len(numbers) <= 5:
        raise ConfigError("Compare takes 2 to 5 trials, e.g. /study/STUDY/compare?trials=3,7,12.")
    trials = store.trials(record.id, numbers=numbers)
    missing = sorted(set(numbers) - {t.number for t in trials})
    if missing:
        raise NotFound(f"Study {name!r} has no trial {missing[0]}.")
    keys = sorted({k for t in trials for k in t.params})
    differ = [k for k in keys if len({repr(t.params.get(k)) for t in trials}) > 1]
    series = store.series([t.id for t in trials])
    return strict_json({"study": {"name": record.name, "metric": record.metric, "mode": record.mode},
                        "trials": [trial_row(t) for t in trials], "differ": differ, "keys": keys,
                        "curves": {str(t.number): {n: decimate(c) for n, c in series[t.id].items()} for t in trials}})


def _artifact_url(path: str, file: Path | None) -> str | None:
    """The dashboard URL of an artifact: /artifacts/<its stored path, relative to the artifact folder>.

    None for a stored path that leaves the artifact folder (``file`` is None, a forged row): the page
    shows no link, and the route, which resolves the path the same way, would refuse it anyway."""
    return None if file is None else f"/artifacts/{quote(path)}"


def _image_data(path: Path | None) -> str | None:
    """A data: URL, so a report file carries its images (None: no file, or a stored path refused)."""
    if path is None:
        return None
    try:
        return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()
    except OSError:
        return None
