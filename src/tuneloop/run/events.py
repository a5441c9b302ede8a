"""What travels between the driver and the workers: trial specs out, events back.

Everything here is a small picklable dataclass, so the same events flow through the inline
executor (a function call), worker processes (a pipe) and, later, Ray.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class TrialSpec:
    """Everything a worker needs to run one trial."""

    trial_id: int
    number: int
    attempt: int
    study: str
    params: dict[str, Any]
    seed: int
    budget: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Report:
    """Metrics at one step; the reply is whether the trial must stop."""

    trial_id: int
    step: int
    metrics: dict[str, float]


@dataclass(frozen=True)
class Finished:
    """The trial function returned (``metrics`` is what it returned) or raised TrialPruned."""

    trial_id: int
    metrics: dict[str, float] | None = None
    pruned: bool = False


@dataclass(frozen=True)
class Failed:
    """The trial function raised, or its worker died; ``message`` is one line."""

    trial_id: int
    message: str
    traceback: str = ""


Event = Report | Finished | Failed


class Channel(Protocol):
    """How a running Trial talks back: ``report`` returns True when the trial must stop."""

    def report(self, spec: TrialSpec, step: int, metrics: dict[str, float]) -> bool: ...
