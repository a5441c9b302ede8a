"""Trials that ran elsewhere (an Optuna study, a table of results) written into the store whole.

An import is all or nothing: the study, every trial, its metric points and its attributes go in
one transaction, so a refused or interrupted import leaves no half-written study behind.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, select

from tuneloop.direction import Direction
from tuneloop.space import Space
from tuneloop.store import schema
from tuneloop.store._retry import retrying
from tuneloop.store._rows import dumps, finite_or_none
from tuneloop.store.records import StudyRecord, TrialState


@dataclass
class ImportedTrial:
    """One finished trial as it goes into the store. ``number`` None: the study's next free one.
    ``points``: (step, metric name, value); ``attrs``: JSON scalars by name."""

    state: TrialState
    params: dict[str, Any]
    seed: int
    value: float | None = None
    values: dict[str, float] = field(default_factory=dict)
    number: int | None = None
    error: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    points: list[tuple[int, str, float]] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)


class ImportMixin:
    """Writing a whole study, or a batch of trials, in one transaction (a part of ``Store``)."""

    if TYPE_CHECKING:  # provided by Store and LogsMixin
        def _write(self) -> Any: ...
        def get_study(self, name: str) -> StudyRecord | None: ...

    @retrying
    def import_study(self, name: str, metric: str, mode: str, space: Space, config: dict[str, Any],
                     trials: Sequence[ImportedTrial]) -> StudyRecord:
        """A new study with ``trials``, all in one transaction."""
        now = time.time()
        with self._write() as conn:
            result = conn.execute(insert(schema.studies).values(
                name=name, metric=metric, mode=Direction.of(mode).value, space=dumps(space.to_json()),
                config=dumps(config), created_at=now, updated_at=now))
            _insert_trials(conn, int(result.inserted_primary_key[0]), trials)
        record = self.get_study(name)
        assert record is not None
        return record

    @retrying
    def import_trials(self, study_id: int, trials: Sequence[ImportedTrial]) -> list[int]:
        """Add finished ``trials`` to a study in one transaction; their numbers."""
        with self._write() as conn:
            return _insert_trials(conn, study_id, trials)


def _insert_trials(conn: Any, study_id: int, trials: Sequence[ImportedTrial]) -> list[int]:
    """Insert the trials, then their points and attributes (by the ids the numbers got)."""
    if not trials:
        return []
    t = schema.trials
    top = conn.execute(select(func.max(t.c.number)).where(t.c.study_id == study_id)).scalar()
    next_free = 0 if top is None else int(top) + 1
    numbers, rows, now = [], [], time.time()
    for trial in trials:
        number = trial.number if trial.number is not None else next_free
        next_free = max(next_free, number + 1)
        numbers.append(number)
        rows.append({
            "study_id": study_id, "number": number, "state": TrialState.of(trial.state).value,
            "params": dumps(trial.params), "seed": trial.seed, "attempt": 0, "value": finite_or_none(trial.value),
            "values": dumps(trial.values), "error": trial.error,
            "created_at": trial.started_at if trial.started_at is not None else now,
            "started_at": trial.started_at, "finished_at": trial.finished_at,
        })
    conn.execute(insert(t), rows)
    wanted = set(numbers)
    ids = {number: trial_id for trial_id, number in conn.execute(select(t.c.id, t.c.number)
                                                                 .where(t.c.study_id == study_id)) if number in wanted}
    metrics: list[dict[str, Any]] = []
    attrs: list[dict[str, Any]] = []
    for number, trial in zip(numbers, trials, strict=True):
        trial_id = ids[number]
        metrics.extend({"trial_id": trial_id, "attempt": 0, "step": step, "name": name, "value": finite_or_none(v)}
                       for step, name, v in trial.points)
        attrs.extend({"trial_id": trial_id, "key": k, "value": json.dumps(v)} for k, v in trial.attrs.items())
    for table, batch in ((schema.metrics, metrics), (schema.trial_attrs, attrs)):
        if batch:  # new trials have no attributes yet to replace: plain inserts (write_batch's IN would grow huge)
            conn.execute(insert(table), batch)
    return numbers
