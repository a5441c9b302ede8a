"""The inline executor: trials run one at a time in the driver's own process (for debugging:
breakpoints and print work, and a traceback points straight at your code)."""

from __future__ import annotations

from typing import Any

from tuneloop.run._executor import InProcessExecutor, executors
from tuneloop.run._system import run_watched, system_every
from tuneloop.run.events import TrialSpec


class InlineExecutor(InProcessExecutor):
    """Run each trial synchronously inside ``submit``."""

    def __init__(self) -> None:
        super().__init__()
        self._busy = False

    @property
    def free_slots(self) -> int:
        return 0 if self._busy else 1

    @property
    def running(self) -> int:
        return int(self._busy)

    def submit(self, spec: TrialSpec) -> None:
        self._busy = True
        try:
            self.handler(run_watched(self.fn, spec, self, every=system_every()))  # device, host, system samples
        finally:
            self._busy = False
            self.forget(spec.trial_id)

    def poll(self, timeout: float) -> int:
        return 0


@executors.register("inline", InlineExecutor)
def _make_inline(options: dict[str, Any], **_: Any) -> InlineExecutor:
    return InlineExecutor(**options)
