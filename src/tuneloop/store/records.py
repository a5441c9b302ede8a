"""Plain records read from the store: what every table, report and plot is drawn from."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from tuneloop.space import Space


class TrialState(str, enum.Enum):
    """Where a trial is in its life. The last five are final; ``interrupted`` is re-run."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    PRUNED = "pruned"
    FAILED = "failed"
    DIVERGED = "diverged"
    INTERRUPTED = "interrupted"

    @property
    def finished(self) -> bool:
        return self in _FINISHED


_FINISHED = {TrialState.COMPLETED, TrialState.PRUNED, TrialState.FAILED, TrialState.DIVERGED}
FINISHED_STATES = tuple(sorted(s.value for s in _FINISHED))


@dataclass(frozen=True)
class StudyRecord:
    """A study as stored."""

    id: int
    name: str
    metric: str
    mode: str
    space: Space
    config: dict[str, Any]
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class StudySummary:
    """A study with its trial counts by state, best value and last activity (for listings)."""

    name: str
    metric: str
    mode: str
    counts: dict[str, int]
    best_value: float | None
    created_at: float
    last_activity: float

    @property
    def n_trials(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class TrialRecord:
    """A trial as stored: its configuration, state, final values and timings."""

    id: int
    number: int
    state: str
    params: dict[str, Any]
    seed: int
    attempt: int
    value: float | None
    values: dict[str, float]
    error: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    study_id: int = field(default=0, repr=False)

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish (None while running)."""
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at


@dataclass(frozen=True)
class HistogramRecord:
    """A stored histogram: equal-width bins from ``low`` to ``high`` over the finite values."""

    step: int
    name: str
    low: float | None
    high: float | None
    counts: list[int]
    n: int
    nonfinite: int
    stats: dict[str, float]
    flag: str | None


@dataclass(frozen=True)
class AlertRecord:
    """A rule that fired: on which quantity, at which step, with which value and message."""

    step: int
    rule: str
    quantity: str
    value: float | None
    action: str
    message: str


@dataclass(frozen=True)
class SliceRecord:
    """One metric on one slice of the evaluation data at one step."""

    step: int
    slice: str
    metric: str
    value: float | None
    n: int


@dataclass(frozen=True)
class SampleRecord:
    """Something logged to look at: an image file (``path``) or inline ``payload``."""

    step: int
    name: str
    kind: str
    path: str | None
    payload: Any
