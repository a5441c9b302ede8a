"""Export a study as JSON or CSV in a documented, stable shape (docs/export.md).

JSON (``format`` names the shape's version; non-finite numbers become null)::

    {"format": "tuneloop.study/1",
     "study": {"name", "metric", "mode", "seed", "budget", "created_at",
               "objectives": [{"name", "direction"}, ...], "constraints": [{"metric", "op", "bound"}, ...],
               "prune_on"},
     "space": {...Space.to_json()...},
     "trials": [{"number", "state", "params", "seed", "value", "values", "feasible", "on_front", "attempt",
                 "started_at", "finished_at", "duration_s", "error",
                 "metrics": {"val_acc": [[step, value], ...], ...}}]}

``metric``/``mode``/``value`` are the first objective's; ``feasible`` is null for a trial that has not
completed. CSV: one row per trial: number, state, value, duration_s, seed, then ``param.NAME`` and
``value.NAME`` columns (empty where a conditional parameter is inactive), and a ``feasible`` column
(yes/no) when the study has constraints.
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

from tuneloop.store import Store, TrialState

FORMAT = "tuneloop.study/1"


_LEAVES = frozenset({int, str, bool, type(None)})  # kept as they are, without a call per value


def strict_json(obj: Any) -> Any:
    """A copy of ``obj`` that strict JSON can hold: NaN and infinities become null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: v if type(v) in _LEAVES else strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):  # the columns of a big study: 10,000s of numbers each
        isfinite = math.isfinite
        return [v if type(v) in _LEAVES else (v if isfinite(v) else None) if type(v) is float else strict_json(v)
                for v in obj]
    return obj


def study_data(store: Store, name: str, *, with_metrics: bool = True) -> dict[str, Any]:
    """The export of study ``name`` as plain data (the JSON shape above)."""
    record = store.require_study(name)
    objectives = record.objectives
    trials = store.trials(record.id)
    series = store.series([t.id for t in trials]) if with_metrics else {}
    front = {t.id for t in objectives.front(trials)}
    return strict_json({
        "format": FORMAT,
        "study": {"name": record.name, "metric": record.metric, "mode": record.mode.value,
                  "seed": record.config.get("seed"), "budget": record.config.get("budget", {}),
                  "created_at": record.created_at, **objectives.to_json()},
        "space": record.space.to_json(),
        "trials": [{
            "number": t.number, "state": t.state.value, "params": t.params, "seed": t.seed, "value": t.value,
            "values": t.values,
            "feasible": objectives.feasible(t.values) if t.state == TrialState.COMPLETED else None,
            "on_front": t.id in front,
            "attempt": t.attempt, "started_at": t.started_at, "finished_at": t.finished_at,
            "duration_s": t.duration, "error": t.error,
            "metrics": {k: [[s, v] for s, v in pts] for k, pts in series.get(t.id, {}).items()},
        } for t in trials],
    })


def to_json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, allow_nan=False)


def to_csv(data: dict[str, Any]) -> str:
    params = sorted({k for t in data["trials"] for k in t["params"]})
    values = sorted({k for t in data["trials"] for k in t["values"]})
    constrained = bool(data["study"].get("constraints"))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["number", "state", "value", "duration_s", "seed"] + (["feasible"] if constrained else [])
                    + [f"param.{p}" for p in params] + [f"value.{v}" for v in values])
    for t in data["trials"]:
        feasible = [{True: "yes", False: "no", None: ""}[t.get("feasible")]] if constrained else []
        writer.writerow([t["number"], t["state"], _cell(t["value"]), _cell(t["duration_s"]), t["seed"]] + feasible
                        + [_cell(t["params"].get(p)) for p in params] + [_cell(t["values"].get(v)) for v in values])
    return out.getvalue()


def _cell(v: Any) -> Any:
    return "" if v is None else v
