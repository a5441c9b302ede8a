"""Mirror trials to Weights & Biases: a run per trial, grouped by study.

Each trial is a run named ``trial-<n>`` in the group named after the study, with its parameters as
config, every reported and logged value against ``trial/step`` (tuneloop's own step: reports per
epoch and logs per batch interleave without W&B dropping out-of-order steps), its attributes as
``attr/<name>`` config, and, when it ends, its final values and ``state`` in the run summary, the
state as a tag, and exit code 0 (completed, pruned) or 1 (failed, diverged, interrupted).

Runs are created with ``reinit="create_new"``, so trials running at once each have their own run
and none is W&B's global ``wandb.run``. W&B's system statistics, console capture and code saving
are off: in tuneloop they would measure and capture the driver process, not the trials (tuneloop
samples each trial's own system metrics).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneloop.errors import ConfigError
from tuneloop.trackers._base import Tracker, flat_value, need, state_of, trackers

if TYPE_CHECKING:
    from tuneloop.store import StudyRecord, TrialRecord

STEP = "trial/step"
_MODES = (None, "online", "offline", "disabled")


class WandB(Tracker):
    """Mirror each trial as a W&B run in a group named after the study.

        study.run(n_trials=20, callbacks=[tl.trackers.WandB("my-project")])

    ``mode``: ``"online"``, ``"offline"`` (files under ``dir``, upload later with ``wandb sync``)
    or ``"disabled"``; None leaves it to W&B (``$WANDB_MODE``, else online)."""

    name, extra, target = "wandb", "wandb", "project"

    def __init__(self, project: str | None = None, *, entity: str | None = None, mode: str | None = None,
                 dir: str | Path | None = None, tags: Sequence[str] = ()) -> None:
        super().__init__()
        self._wandb = need("wandb", self.name, self.extra)
        if mode not in _MODES:
            raise ConfigError(f"The 'mode' argument of WandB must be 'online', 'offline', 'disabled' or None. "
                              f"Got {mode!r} instead.")
        self.project, self.entity, self.mode = project, entity, mode
        self.dir = None if dir is None else Path(dir)
        self.tags = tuple(str(t)[:64] for t in tags)
        self._runs: dict[int, Any] = {}

    def __repr__(self) -> str:
        return f"WandB({self.project!r})"

    def start_study(self, study: StudyRecord) -> None:
        if self.dir is not None:
            self.dir.mkdir(parents=True, exist_ok=True)

    def start_trial(self, number: int, params: dict[str, Any]) -> None:
        wandb = self._wandb
        if number in self._runs:  # an attempt whose worker died: end its run, open the next attempt's
            self._finish(self._runs.pop(number), "interrupted", {})
        settings = wandb.Settings(console="off", silent=True, x_disable_stats=True, x_disable_meta=True,
                                  save_code=False, disable_git=True)
        run = wandb.init(project=self.project or "tuneloop", entity=self.entity, group=self.study.name[:128],
                         job_type="trial", name=f"trial-{int(number)}", tags=self.tags,
                         config={k: flat_value(v) for k, v in params.items()}, dir=self.dir, mode=self.mode,
                         reinit="create_new", settings=settings)
        run.define_metric(STEP)
        run.define_metric("*", step_metric=STEP)
        self._runs[number] = run

    def scalars(self, number: int, step: int, values: dict[str, float]) -> None:
        run = self._runs.get(number)
        if run is not None:
            run.log({**values, STEP: step})

    def attrs(self, number: int, attrs: dict[str, Any]) -> None:
        run = self._runs.get(number)
        if run is not None:
            run.config.update({f"attr/{k}": flat_value(v) for k, v in attrs.items()}, allow_val_change=True)

    def end_trial(self, record: TrialRecord) -> None:
        run = self._runs.pop(record.number, None)
        if run is not None:
            self._finish(run, state_of(record), dict(record.values))

    def _finish(self, run: Any, state: str, values: dict[str, float]) -> None:
        run.summary.update({**values, "state": state})
        run.tags = (*run.tags, state)
        run.finish(exit_code=0 if state in ("completed", "pruned") else 1)

    def end_study(self) -> None:
        for number in list(self._runs):
            self._finish(self._runs.pop(number), "interrupted", {})


@trackers.register("wandb", WandB)
def _make_wandb(options: dict[str, Any], **_: Any) -> WandB:
    return WandB(**options)
