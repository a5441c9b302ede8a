"""Plain records read from the store: what every table, report and plot is drawn from.

States and directions are typed (``TrialState``, ``Direction``) but both are ``str`` enums, so
``record.state == "completed"`` and ``record.mode == "max"`` hold and JSON shows the plain words.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from typing import Any

from tuneloop.direction import Direction
from tuneloop.errors import StorageError
from tuneloop.objectives import Objectives
from tuneloop.space import Space


class TrialState(str, enum.Enum):
    """Where a trial is in its life: ``queued`` and ``running`` while it runs; ``completed``,
    ``pruned``, ``failed`` and ``diverged`` are final; ``interrupted`` (its driver stopped) runs again."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    PRUNED = "pruned"
    FAILED = "failed"
    DIVERGED = "diverged"
    INTERRUPTED = "interrupted"

    def __str__(self) -> str:  # f-strings and tables show "completed", not "TrialState.COMPLETED"
        return self.value

    @property
    def finished(self) -> bool:
        """Whether the trial has ended for good (``interrupted`` has not: it runs again)."""
        return self in _FINISHED

    @classmethod
    def of(cls, value: Any) -> TrialState:
        """``value`` as a TrialState; a ValueError naming the states there are when it is none."""
        if isinstance(value, TrialState):
            return value
        try:
            return cls(value)
        except ValueError:
            names = ", ".join(repr(s.value) for s in cls)
            raise ValueError(f"{value!r} is not a trial state (one of {names})") from None


_FINISHED = {TrialState.COMPLETED, TrialState.PRUNED, TrialState.FAILED, TrialState.DIVERGED}
FINISHED_STATES = tuple(sorted(s.value for s in _FINISHED))


class JobState(str, enum.Enum):
    """Where a queued job is: ``queued`` waits for a runner, ``running`` has one (or had one that died: it
    is taken over), ``done`` exited 0, ``failed`` exited otherwise or was refused, ``removed`` was taken off."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    REMOVED = "removed"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class StudyRecord:
    """A study as stored."""

    id: int
    name: str
    metric: str
    mode: Direction
    space: Space
    config: dict[str, Any]
    created_at: float
    updated_at: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", Direction.of(self.mode, "StudyRecord"))

    @property
    def objectives(self) -> Objectives:
        """Its objectives, constraints and judge (a study stored before them: its metric and mode).
        A ValueError naming the study when the stored ones are malformed (the database may come from anyone)."""
        cached = self.__dict__.get("_objectives")
        if cached is None:
            try:
                cached = Objectives.from_config(self.config, self.metric, self.mode, f"study {self.name[:80]!r}")
            except ValueError as e:
                raise StorageError(f"Corrupt row: {e}; repair or delete that row in the database.") from None
            object.__setattr__(self, "_objectives", cached)
        return cached


@dataclass(frozen=True)
class StudySummary:
    """A study with its trial counts by state, best value and last activity (for listings)."""

    name: str
    metric: str
    mode: Direction
    counts: dict[str, int]  # by state name; a listing shows whatever a database holds
    best_value: float | None
    created_at: float
    last_activity: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", Direction.of(self.mode, "StudySummary"))

    @property
    def n_trials(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class TrialRecord:
    """A trial as stored: its configuration, state, final values and timings."""

    id: int
    number: int
    state: TrialState
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
    attrs: dict[str, Any] = field(default_factory=dict, repr=False)  # device, host, Trial.set_attr's

    def __post_init__(self) -> None:
        if type(self.state) is not TrialState:  # a store read gives one already: nothing to convert
            object.__setattr__(self, "state", TrialState.of(self.state))

    @classmethod
    def _read(cls, id: int, number: int, state: TrialState, params: dict[str, Any], seed: int, attempt: int,
              value: float | None, values: dict[str, float], error: str | None, created_at: float,
              started_at: float | None, finished_at: float | None, study_id: int,
              attrs: dict[str, Any]) -> TrialRecord:
        """What ``TrialRecord(...)`` makes of a stored row whose state is already a TrialState (the store
        checks each row), without the frozen dataclass's setattr per field: 10,000 rows on a study page."""
        if type(state) is not TrialState:
            return cls(id, number, state, params, seed, attempt, value, values, error, created_at, started_at,
                       finished_at, study_id, attrs)
        record = object.__new__(cls)
        record.__dict__.update({  # in field order, as __init__ sets them
            "id": id, "number": number, "state": state, "params": params, "seed": seed, "attempt": attempt,
            "value": value, "values": values, "error": error, "created_at": created_at, "started_at": started_at,
            "finished_at": finished_at, "study_id": study_id, "attrs": attrs})
        return record

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish (None while running)."""
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at


# TrialRecord._read sets the fields itself: in this order, which a new field must join
assert tuple(f.name for f in fields(TrialRecord)) == (
    "id", "number", "state", "params", "seed", "attempt", "value", "values", "error", "created_at", "started_at",
    "finished_at", "study_id", "attrs")


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


@dataclass(frozen=True)
class JobRecord:
    """A job of the queue as stored (``tuneloop queue list`` shows it)."""

    id: int
    position: float
    kind: str
    args: list[str]
    title: str
    state: JobState
    paused: bool
    runner: str | None
    host: str | None
    pid: int | None
    heartbeat_at: float | None
    attempts: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    exit_code: int | None
    tail: str | None
    reason: str | None
    estimate_s: float | None
    files: dict[str, str]
    signature: str | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", JobState(self.state))
