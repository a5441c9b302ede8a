"""The inline executor: trials run one at a time in the driver's own process (for debugging:
breakpoints and print work, and a traceback points straight at your code)."""

from __future__ import annotations

from typing import Any

from tuneloop.run._execute import execute
from tuneloop.run._executor import Executor, executors
from tuneloop.run.events import Event, Report, TrialSpec


class InlineExecutor(Executor):
    """Run each trial synchronously inside ``submit``."""

    def __init__(self) -> None:
        self._busy = False
        self._stopped: set[int] = set()

    @property
    def free_slots(self) -> int:
        return 0 if self._busy else 1

    @property
    def running(self) -> int:
        return int(self._busy)

    def report(self, spec: TrialSpec, step: int, metrics: dict[str, float]) -> bool:
        return bool(self.handler(Report(spec.trial_id, step, metrics)))

    def emit(self, spec: TrialSpec, event: Event) -> None:
        if self.handler(event):
            self._stopped.add(spec.trial_id)

    def stop_requested(self, spec: TrialSpec) -> bool:
        return spec.trial_id in self._stopped

    def submit(self, spec: TrialSpec) -> None:
        self._busy = True
        try:
            self.handler(execute(self.fn, spec, self))
        finally:
            self._busy = False
            self._stopped.discard(spec.trial_id)

    def poll(self, timeout: float) -> int:
        return 0


@executors.register("inline")
def _make_inline(options: dict[str, Any], **_: Any) -> InlineExecutor:
    return InlineExecutor(**options)
