"""Mirror trials to TensorBoard: one run folder per trial, ``<folder>/<study>/trial-<n>``.

Every reported and logged value is a scalar with its step; when a trial ends, its parameters and
final state go to TensorBoard's HParams tab with the objective as ``final/<metric>``, so trials
are compared there as a table and parallel coordinates. Attributes (device, host) are text.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneloop.trackers._base import Tracker, flat_value, inside, need, safe_segment, state_of, trackers

if TYPE_CHECKING:
    from tuneloop.store import StudyRecord, TrialRecord


class TensorBoard(Tracker):
    """Write each trial's curves to TensorBoard event files under ``folder``.

        study.run(n_trials=20, callbacks=[tl.trackers.TensorBoard("runs")])
        # tensorboard --logdir runs

    ``flush_secs``: how often the event files are flushed to disk (TensorBoard shows what is)."""

    name, extra, target = "tensorboard", "tensorboard", "folder"

    def __init__(self, folder: str | Path = "runs", *, flush_secs: float = 10.0) -> None:
        super().__init__()
        self._tb = need("torch.utils.tensorboard", self.name, self.extra)
        self.folder = Path(folder)
        self.flush_secs = flush_secs
        self._writers: dict[int, Any] = {}
        self._trials: dict[int, dict[str, Any]] = {}  # number -> params, attrs, last step

    def __repr__(self) -> str:
        return f"TensorBoard({str(self.folder)!r})"

    def run_folder(self, study: str, number: int) -> Path:
        """Where trial ``number`` of ``study`` writes: ``<folder>/<study, made safe>/trial-<number>``."""
        return inside(self.folder, safe_segment(study), f"trial-{int(number)}")

    def start_study(self, study: StudyRecord) -> None:
        self.run_folder(study.name, 0).parent.mkdir(parents=True, exist_ok=True)

    def start_trial(self, number: int, params: dict[str, Any]) -> None:
        if number in self._writers:  # an attempt whose worker died: this one continues the same folder
            self._writers.pop(number).close()
        self._writers[number] = self._tb.SummaryWriter(str(self.run_folder(self.study.name, number)),
                                                       max_queue=1000, flush_secs=self.flush_secs)
        self._trials[number] = {"params": dict(params), "attrs": {}, "step": 0}

    def scalars(self, number: int, step: int, values: dict[str, float]) -> None:
        writer = self._writers.get(number)
        if writer is None:
            return
        for name, value in values.items():
            writer.add_scalar(name, value, step)
        if self.study.metric in values:  # final/<metric> goes at the objective's last step
            self._trials[number]["step"] = max(self._trials[number]["step"], step)

    def attrs(self, number: int, attrs: dict[str, Any]) -> None:
        writer = self._writers.get(number)
        if writer is None:
            return
        self._trials[number]["attrs"].update(attrs)
        for name, value in attrs.items():
            writer.add_text(f"attrs/{name}", str(value), 0)

    def end_trial(self, record: TrialRecord) -> None:
        writer = self._writers.pop(record.number, None)
        trial = self._trials.pop(record.number, None)
        if writer is None or trial is None:
            return
        from torch.utils.tensorboard.summary import hparams

        hp = {name: flat_value(v) for name, v in trial["params"].items()}
        hp |= {f"attr/{name}": flat_value(v) for name, v in trial["attrs"].items()}
        hp["state" if "state" not in hp else "tuneloop/state"] = state_of(record)  # a parameter may be called state
        key = f"final/{self.study.metric}"
        value = record.value if record.value is not None and math.isfinite(record.value) else math.nan
        for summary in hparams(hp, {key: value}):
            writer.file_writer.add_summary(summary)
        writer.add_scalar(key, value, trial["step"])
        writer.close()

    def end_study(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
        self._trials.clear()


@trackers.register("tensorboard", TensorBoard)
def _make_tensorboard(options: dict[str, Any], **_: Any) -> TensorBoard:
    return TensorBoard(**options)
