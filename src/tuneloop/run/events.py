"""What travels between the driver and the workers: trial specs out, events back.

Everything here is a small picklable dataclass, so the same events flow through the inline and
population executors (a function call), worker processes (a pipe) and Ray tasks (a mailbox
actor). A running trial sends them through its :class:`Channel`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any


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
    phase: str = "tune"  # "final": fit on ``fit_on`` and evaluate once on the test split (finalize)
    fit_on: str = "train"  # in the final phase: "train" or "train+val"
    checkpoint: bool = False  # the scheduler continues trials from checkpoints: save one at the end
    resume: str | None = None  # absolute path of the checkpoint to start from (inside the artifact folder)
    resume_step: int | None = None
    resume_error: str | None = None  # why the stored checkpoint was refused: loading it fails with this


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
    retryable: bool = False  # the trial did not fail, its worker died: worth another attempt


@dataclass(frozen=True)
class Scalars:
    """Values logged without asking the scheduler (diagnostics, per-step train loss)."""

    trial_id: int
    step: int
    values: dict[str, float]


@dataclass(frozen=True)
class Histogram:
    """A histogram summary: equal-width bin counts over the finite values, plus statistics."""

    trial_id: int
    step: int
    name: str
    low: float | None
    high: float | None
    counts: bytes  # little-endian uint32 per bin
    n: int
    nonfinite: int
    stats: dict[str, float]
    flag: str | None = None


@dataclass(frozen=True)
class SliceMetric:
    """One metric on one slice of the evaluation data (a class, a noise level...)."""

    trial_id: int
    step: int
    slice: str
    metric: str
    value: float
    n: int


@dataclass(frozen=True)
class Sample:
    """Something to look at: PNG bytes for an image, JSON text for text, arrays and tables."""

    trial_id: int
    step: int
    name: str
    kind: str
    data: bytes | str


@dataclass(frozen=True)
class Checkpoint:
    """A trial's saved state (``torch.save`` bytes of tensors and plain data only, so it loads with
    ``weights_only=True``), written to a file by the driver."""

    trial_id: int
    step: int
    data: bytes


@dataclass(frozen=True)
class Attrs:
    """Facts about a trial that are not curves: the device it ran on, its host, what the trial
    function set with ``Trial.set_attr``. Strings, numbers, bools and None only."""

    trial_id: int
    values: dict[str, Any]


Event = Report | Finished | Failed | Scalars | Histogram | SliceMetric | Sample | Checkpoint | Attrs


class Channel(ABC):
    """How a running Trial talks back to the driver. Executors that run trials in the driver's
    process are their trials' channel (``InProcessExecutor``); workers elsewhere hold one that
    carries events over a pipe (processes) or through a mailbox actor (Ray)."""

    @abstractmethod
    def report(self, spec: TrialSpec, step: int, metrics: dict[str, float]) -> bool:
        """Send a Report and wait for the verdict: True when the trial must stop."""

    @abstractmethod
    def emit(self, spec: TrialSpec, event: Event) -> None:
        """Send any other event without waiting."""

    @abstractmethod
    def stop_requested(self, spec: TrialSpec) -> bool:
        """Whether the driver has asked the trial to stop since its last report (an alert rule,
        through ``Executor.cancel``)."""
