"""The ``none`` scheduler: every trial runs its whole budget."""

from __future__ import annotations

from typing import Any

from tuneloop.schedule._base import Decision, Scheduler, schedulers


class NoScheduler(Scheduler):
    """Never stops a trial."""

    def on_report(self, trial_id: int, step: int, value: float) -> Decision:
        return Decision.CONTINUE


@schedulers.register("none", NoScheduler)
def _make_none(options: dict[str, Any], **_: Any) -> NoScheduler:
    return NoScheduler(**options)
