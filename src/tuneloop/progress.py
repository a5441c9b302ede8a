"""A Rich progress bar for a study run: done / running / failed, best so far, ETA."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from tuneloop.callbacks import Callback


class RichProgress(Callback):
    """Shows the run's progress in the terminal (used by ``study.run(progress=True)`` and the CLI)."""

    def __init__(self, metric: str, mode: str, console: Console | None = None) -> None:
        self.metric, self.mode = metric, mode
        self.console = console or Console(stderr=True)
        self.best: float | None = None
        self.running = 0
        self.counts: dict[str, int] = {}
        self._progress: Progress | None = None
        self._task: Any = None

    def on_run_start(self, study: Any, n_trials: int | None, finished: int) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            console=self.console, transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task(study.name, total=n_trials, completed=finished, status="")

    def on_trial_start(self, number: int, params: dict[str, Any]) -> None:
        self.running += 1
        self._refresh()

    def on_trial_end(self, trial: Any) -> None:
        self.running -= 1
        self.counts[trial.state] = self.counts.get(trial.state, 0) + 1
        if trial.state == "completed" and trial.value is not None and math.isfinite(trial.value):
            if self.best is None or (trial.value > self.best if self.mode == "max" else trial.value < self.best):
                self.best = trial.value
        if self._progress is not None:
            self._progress.advance(self._task)
        self._refresh()

    def _refresh(self) -> None:
        if self._progress is None:
            return
        parts = [f"running {self.running}"]
        for state, colour in (("pruned", "yellow"), ("failed", "red"), ("diverged", "magenta")):
            if self.counts.get(state):
                parts.append(f"[{colour}]{state} {self.counts[state]}[/]")
        if self.best is not None:
            parts.append(f"best {self.metric} [green]{self.best:.4g}[/]")
        self._progress.update(self._task, status=" | ".join(parts))

    def on_run_end(self, summary: Any) -> None:
        self.close()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
