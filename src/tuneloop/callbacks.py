"""Hooks into a study run. Every method does nothing by default: override the one you need.

    class PrintBest(tl.Callback):
        def on_trial_end(self, trial):
            print(trial.number, trial.state, trial.value)

    study.run(n_trials=20, callbacks=[PrintBest()])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuneloop.run.driver import RunSummary
    from tuneloop.store import StudyRecord, TrialRecord


class Callback:
    """Called by the driver as a run goes; all methods are no-ops unless overridden."""

    def on_run_start(self, study: StudyRecord, n_trials: int | None, finished: int) -> None:
        """A run begins; ``finished`` trials are already done (a resumed study)."""

    def on_trial_start(self, number: int, params: dict[str, Any]) -> None:
        """Trial ``number`` was launched with ``params``."""

    def on_report(self, number: int, step: int, metrics: dict[str, float]) -> None:
        """Trial ``number`` reported ``metrics`` at ``step``."""

    def on_log(self, number: int, step: int, values: dict[str, float]) -> None:
        """Trial ``number`` logged ``values`` at ``step`` without asking the scheduler (``Trial.log``,
        system metrics named ``sys/...``)."""

    def on_attrs(self, number: int, attrs: dict[str, Any]) -> None:
        """Trial ``number`` recorded attributes (its device and host, or ``Trial.set_attr``)."""

    def on_alert(self, number: int, step: int, message: str, action: str) -> None:
        """An expected-range rule fired on trial ``number`` (``action``: warn or stop)."""

    def on_trial_end(self, trial: TrialRecord) -> None:
        """A trial reached a final state (completed, pruned, failed or diverged)."""

    def on_run_end(self, summary: RunSummary) -> None:
        """The run is over (not called when it was interrupted)."""
