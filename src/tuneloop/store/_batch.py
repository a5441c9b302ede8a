"""``LogBatch``: what a driver has received from its trials and not yet written, as table rows.

The driver buffers every point, histogram, slice, sample, checkpoint and alert here and writes
them in one transaction (``store.write_batch(batch.take())``, or with a trial's end through
``finish_leased_trial``). The rows' columns are the store's business, so they are built here:
the driver only says what happened.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from tuneloop.store._logs import alert_row
from tuneloop.store.store import Point, point_rows

_TABLES = ("histograms", "slices", "samples", "alerts", "checkpoints", "trial_attrs")


class LogBatch:
    """Rows waiting to be written, by table; ``len`` counts them all."""

    def __init__(self) -> None:
        self._points: list[Point] = []
        self._rows: dict[str, list[dict[str, Any]]] = {t: [] for t in _TABLES}

    def __len__(self) -> int:
        return len(self._points) + sum(len(rows) for rows in self._rows.values())

    def metrics(self, trial_id: int, attempt: int, step: int, values: Mapping[str, float]) -> None:
        """Metric points of one step (non-finite values are stored as NULL)."""
        self._points.extend((trial_id, attempt, step, name, value) for name, value in values.items())

    def histogram(self, trial_id: int, attempt: int, step: int, *, name: str, low: float | None,
                  high: float | None, counts: bytes, n: int, nonfinite: int, stats: Mapping[str, float],
                  flag: str | None = None) -> None:
        self._add("histograms", trial_id, attempt, step, name=name, low=low, high=high, counts=counts, n=n,
                  nonfinite=nonfinite, stats=json.dumps(dict(stats)), flag=flag)

    def slice(self, trial_id: int, attempt: int, step: int, *, slice: str, metric: str, value: float,
              n: int) -> None:
        self._add("slices", trial_id, attempt, step, slice=slice, metric=metric,
                  value=value if math.isfinite(value) else None, n=n)

    def sample(self, trial_id: int, attempt: int, step: int, *, name: str, kind: str, path: str | None = None,
               payload: str | None = None) -> None:
        """A sample: a file in the artifact folder (``path``, relative to it) or inline ``payload``."""
        self._add("samples", trial_id, attempt, step, name=name, kind=kind, path=path, payload=payload)

    def checkpoint(self, trial_id: int, attempt: int, step: int, path: str, created_at: float) -> None:
        self._add("checkpoints", trial_id, attempt, step, path=path, created_at=created_at)

    def alert(self, trial_id: int, attempt: int, step: int, *, rule: str, quantity: str, value: float | None,
              action: str, message: str) -> None:
        self._rows["alerts"].append(alert_row(trial_id, attempt, step, rule, quantity, value, action, message))

    def attrs(self, trial_id: int, values: Mapping[str, Any]) -> None:
        """Attributes of a trial (JSON scalars); a key given twice keeps its last value."""
        rows = self._rows["trial_attrs"]
        keys = {(trial_id, str(k)) for k in values}
        rows[:] = [r for r in rows if (r["trial_id"], r["key"]) not in keys]
        rows.extend({"trial_id": trial_id, "key": str(k), "value": json.dumps(v)} for k, v in values.items())

    def take(self) -> dict[str, list[dict[str, Any]]]:
        """Every waiting row by table (as ``Store.write_batch`` takes them); the batch is empty after."""
        rows = {"metrics": point_rows(self._points), **self._rows}
        self._points, self._rows = [], {t: [] for t in _TABLES}
        return rows

    def _add(self, table: str, trial_id: int, attempt: int, step: int, **columns: Any) -> None:
        self._rows[table].append({"trial_id": trial_id, "attempt": attempt, "step": step, **columns})
