"""A Rich progress bar for a study run: done / running / failed, best so far, ETA."""

from __future__ import annotations

import math
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from tuneloop._text import safe
from tuneloop.callbacks import Callback
from tuneloop.direction import Direction
from tuneloop.objectives import Objectives, dominates
from tuneloop.store.records import TrialState


class RichProgress(Callback):
    """Shows the run's progress in the terminal (used by ``study.run(progress=True)`` and the CLI)."""

    def __init__(self, metric: str, mode: str, console: Console | None = None, timeout: float | None = None,
                 objectives: Objectives | None = None) -> None:
        self.metric, self.mode, self.timeout = metric, Direction.of(mode, "RichProgress"), timeout
        self.objectives = objectives or Objectives.of(metric, mode)
        self._points: list[tuple[float, ...]] = []  # the front so far (several objectives), minimizing
        self.console = console or Console(stderr=True)
        self.best: float | None = None
        self.running = 0
        self.counts: dict[str, int] = {}  # by trial state, and "alerts"
        self._rules_seen: set[str] = set()
        self._progress: Progress | None = None
        self._task: Any = None

    def on_run_start(self, study: Any, n_trials: int | None, finished: int) -> None:
        # a count-limited run shows trials done of the total; a time-limited one shows the clock
        self._by_time = n_trials is None and self.timeout is not None
        counter = TextColumn("{task.fields[done]} trials") if self._by_time else MofNCompleteColumn()
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), counter,
            TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            console=self.console, transient=False,
        )
        self._progress.start()
        self._start = time.monotonic()
        self._done = finished
        total = self.timeout if self._by_time else n_trials
        self._task = self._progress.add_task(safe(study.name), total=total, completed=0 if self._by_time else finished,
                                             status="", done=finished)

    def on_trial_start(self, number: int, params: dict[str, Any]) -> None:
        self.running += 1
        self._refresh()

    def on_alert(self, number: int, step: int, message: str, action: str) -> None:
        """Print the first alert of each rule; count the rest (tuneloop show lists them all)."""
        self.counts["alerts"] = self.counts.get("alerts", 0) + 1
        rule = message.split(":", 1)[0]
        if rule not in self._rules_seen:
            self._rules_seen.add(rule)
            colour = "red" if action == "stop" else "yellow"
            self.console.print(f"[{colour}]alert[/] trial {number} step {step}: {safe(message)} [dim](further "
                               f"{safe(repr(rule))} alerts are counted below; tuneloop show STUDY TRIAL lists them)[/]",
                               highlight=False)
        self._refresh()

    def on_trial_end(self, trial: Any) -> None:
        self.running -= 1
        self.counts[trial.state] = self.counts.get(trial.state, 0) + 1
        finite = trial.value is not None and math.isfinite(trial.value)
        values = getattr(trial, "values", None) or {}  # a TrialRecord's final metrics
        counts = trial.state == TrialState.COMPLETED and finite and self.objectives.feasible(values)
        if counts and self.objectives.multi:
            point = self.objectives.loss(values)
            if point is not None and not any(dominates(p, point) or p == point for p in self._points):
                self._points = [p for p in self._points if not dominates(point, p)] + [point]
        elif counts and (self.best is None or self.mode.better(trial.value, self.best)):
            self.best = trial.value
        self._done += 1
        if self._progress is not None and not self._by_time:
            self._progress.advance(self._task)
        self._refresh()

    def _refresh(self) -> None:
        if self._progress is None:
            return
        parts = [f"running {self.running}"]
        for state, colour in ((TrialState.PRUNED, "yellow"), (TrialState.FAILED, "red"), (TrialState.DIVERGED, "magenta"),
                              ("alerts", "yellow")):
            if self.counts.get(state):
                parts.append(f"[{colour}]{state} {self.counts[state]}[/]")
        if self._points:
            parts.append(f"front [green]{len(self._points)}[/]")
        if self.best is not None:
            feasible = " (feasible)" if self.objectives.constraints else ""
            parts.append(f"best {safe(self.metric)}{feasible} [green]{self.best:.4g}[/]")
        update: dict[str, Any] = {"status": " | ".join(parts), "done": self._done}
        if self._by_time:
            update["completed"] = min(time.monotonic() - self._start, self.timeout or 0.0)
        self._progress.update(self._task, **update)

    def on_report(self, number: int, step: int, metrics: dict[str, float]) -> None:
        if self._by_time:
            self._refresh()

    def on_run_end(self, summary: Any) -> None:
        self.close()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
