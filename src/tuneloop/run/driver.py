"""The driver: the one loop that owns a study run.

It asks the searcher, launches trials on an executor, receives their events, lets the
scheduler stop or continue them, tells the searcher the results and writes everything to the
store. Workers never decide anything. Because every step is in the store, a killed driver is
resumed by running it again: finished trials are kept and replayed into the searcher and
scheduler, interrupted ones re-run (same number, same parameters, next attempt), and the
study reaches exactly ``n_trials`` finished trials.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from tuneloop.alerts import Fired, Rule, RuleBook
from tuneloop.callbacks import Callback
from tuneloop.run._executor import Executor
from tuneloop.run.events import (
    Checkpoint,
    Event,
    Failed,
    Finished,
    Histogram,
    Report,
    Sample,
    Scalars,
    SliceMetric,
    TrialSpec,
)
from tuneloop.schedule import Decision, Scheduler
from tuneloop.search import Outcome, Searcher
from tuneloop.store import Store, StudyRecord, TrialRecord
from tuneloop.store._logs import alert_row
from tuneloop.store.store import point_rows
from tuneloop.store.records import FINISHED_STATES

_FLUSH_SECONDS = 1.0  # metric points reach the store at least this often (live dashboards)
_FLUSH_POINTS = 2000
_FILE_KINDS = {"image": "png", "predictions": "npz"}  # samples stored as files, by extension


def trial_seed(study_seed: int, number: int) -> int:
    """A well-mixed per-trial seed: the same study seed and number always give the same one."""
    return int(np.random.SeedSequence([study_seed, number]).generate_state(1)[0] % (2**31 - 1))


@dataclass
class RunSummary:
    """What one ``run`` did: trials launched, their outcomes, and why it stopped."""

    study: str
    launched: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    finished_total: int = 0
    elapsed: float = 0.0
    reason: str = "done"  # done | timeout | exhausted | interrupted | nothing to do
    retried: int = 0  # attempts started again after their worker died


@dataclass
class _Running:
    spec: TrialSpec
    token: Any
    curve: list[tuple[int, float]] = field(default_factory=list)
    last: dict[str, float] = field(default_factory=dict)
    pruned: bool = False
    diverged: bool = False
    rule_stop: str | None = None  # "diverged" or "pruned" when a stop rule fired
    meta: dict[str, Any] | None = None  # a planner's lineage of this trial


class Driver:
    """Runs ``fn`` over configurations from ``searcher`` until the study has ``n_trials``."""

    def __init__(
        self,
        *,
        store: Store,
        study: StudyRecord,
        fn: Callable[..., Any],
        searcher: Searcher,
        scheduler: Scheduler,
        executor: Executor,
        n_trials: int | None,
        seed: int,
        budget: dict[str, Any] | None = None,
        timeout: float | None = None,
        callbacks: Sequence[Callback] = (),
        experiment_path: str | None = None,
        rules: Sequence[Rule] = (),
        phase: str = "tune",
        fit_on: str = "train",
        budget_of: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        max_retries: int = 1,
    ) -> None:
        self.store, self.study, self.fn = store, study, fn
        self.searcher, self.scheduler, self.executor = searcher, scheduler, executor
        self.n_trials, self.seed, self.budget = n_trials, seed, dict(budget or {})
        self.timeout, self.callbacks, self.experiment_path = timeout, list(callbacks), experiment_path
        self.metric = study.metric
        self.phase, self.fit_on, self.budget_of = phase, fit_on, budget_of  # finalize's runs differ here
        self.checkpoints = bool(getattr(scheduler, "checkpoints", False))  # planners continue from them
        self._lineage: dict[int, dict[str, Any]] = {}
        self._running: dict[int, _Running] = {}
        self.max_retries = max_retries
        self._retries: list[tuple[TrialSpec, Any, dict[str, Any] | None]] = []  # (spec, token, lineage) to run again
        self._points: list[tuple[int, int, int, str, float]] = []
        self._batch: dict[str, list[dict[str, Any]]] = {"histograms": [], "slices": [], "samples": [], "alerts": [],
                                                     "checkpoints": []}
        self.rulebook = RuleBook(list(rules))
        self._last_flush = time.monotonic()
        self.summary = RunSummary(study.name)

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> RunSummary:
        start = time.monotonic()
        reruns, finished = self._recover()
        needed = None if self.n_trials is None else self.n_trials - finished
        if needed is not None and needed <= 0:
            self.summary.reason, self.summary.finished_total = "nothing to do", finished
            return self.summary
        reruns = reruns if needed is None else reruns[:needed]
        new_needed = None if needed is None else needed - len(reruns)
        next_number = self.store.next_number(self.study.id)
        for cb in self.callbacks:
            cb.on_run_start(self.study, self.n_trials, finished)
        self.executor.start(self.fn, self._handle, experiment_path=self.experiment_path)
        launching, new_launched = True, 0
        try:
            while True:
                while launching and self.executor.free_slots > 0:
                    if self.timeout is not None and time.monotonic() - start >= self.timeout:
                        launching, self.summary.reason = False, "timeout"
                        break
                    if self._retries:  # a worker died under these: their next attempt
                        spec, token, meta = self._retries.pop(0)
                        self._launch(spec, token, meta=meta)
                        continue
                    if reruns:
                        record = reruns.pop(0)
                        attempt = self.store.restart_trial(record.id)
                        meta = self._lineage.get(record.id, {})
                        spec = self._spec(record.id, record.number, attempt, record.params, record.seed,
                                          meta.get("parent"), meta.get("info", {}).get("budget"))
                        self._launch(spec, token=None, meta=meta or None)
                        continue
                    if new_needed is not None and new_launched >= new_needed:
                        launching = False
                        break
                    proposals = self.searcher.ask(1)
                    if not proposals:
                        if self.searcher.waiting and self.executor.running > 0:
                            break  # a generation or rung is still running: ask again when it ends
                        launching, self.summary.reason = False, "exhausted"
                        break
                    p = proposals[0]
                    number, next_number = next_number, next_number + 1
                    seed = trial_seed(self.seed, number)
                    trial_id = self.store.create_trial(self.study.id, number, p.params, seed)
                    if p.meta is not None:
                        self._lineage[trial_id] = self._record_lineage(trial_id, p)
                    spec = self._spec(trial_id, number, 0, p.params, seed, p.resume_from, p.budget)
                    self._launch(spec, p.token, meta=self._lineage.get(trial_id))
                    new_launched += 1
                if not launching and self.executor.running == 0 and not self._retries:
                    break
                if self._retries and not launching and self.executor.free_slots > 0:
                    spec, token, meta = self._retries.pop(0)
                    self._launch(spec, token, meta=meta)
                self.executor.poll(0.05)
                self._flush_if_due()
        except BaseException:
            self._abandon()
            raise
        self.executor.shutdown()
        self.summary.elapsed = time.monotonic() - start
        self.summary.finished_total = self.store.count_finished(self.study.id)
        for cb in self.callbacks:
            cb.on_run_end(self.summary)
        return self.summary

    def _spec(self, trial_id: int, number: int, attempt: int, params: dict[str, Any], seed: int,
              resume_from: int | None = None, budget: dict[str, Any] | None = None) -> TrialSpec:
        full = self.budget if self.budget_of is None else {**self.budget, **self.budget_of(params)}
        resume = None
        if resume_from is not None:  # continue from that trial's last checkpoint (none saved: a fresh start)
            resume = self.store.latest_checkpoint(self.store.trial(self.study.id, resume_from).id)
        return TrialSpec(trial_id, number, attempt, self.study.name, dict(params), seed, {**full, **(budget or {})},
                         phase=self.phase, fit_on=self.fit_on, checkpoint=self.checkpoints,
                         resume=None if resume is None else str(resume[1]), resume_step=None if resume is None else resume[0])

    def _record_lineage(self, trial_id: int, p: Any) -> dict[str, Any]:
        """Where a planner's trial sits (member, generation, parent, event), stored with it."""
        meta = dict(p.meta)
        row = {"trial_id": trial_id, "member": int(meta.pop("member")), "generation": int(meta.pop("generation")),
               "parent": p.resume_from, "event": str(meta.pop("event", "start")),
               "info": json.dumps({"budget": p.budget, **meta})}
        self.store.write_batch({"lineage": [row]})
        return {**{k: row[k] for k in ("member", "generation", "parent", "event")}, "info": {"budget": p.budget, **meta}}

    def _launch(self, spec: TrialSpec, token: Any, meta: dict[str, Any] | None = None) -> None:
        self._running[spec.trial_id] = _Running(spec, token, meta=meta)
        self.scheduler.on_launch(spec.trial_id, spec.params)
        self.summary.launched += 1
        for cb in self.callbacks:
            cb.on_trial_start(spec.number, spec.params)
        self.executor.submit(spec)

    def _recover(self) -> tuple[list[TrialRecord], int]:
        """Mark trials a dead driver left running as interrupted; replay finished ones."""
        self.store.mark_interrupted(self.study.id)
        records = self.store.trials(self.study.id)
        self._lineage = self.store.lineage(self.study.id)
        finished = [r for r in records if r.state in FINISHED_STATES]
        curves = self.store.series([r.id for r in finished], names=[self.metric]) if finished else {}
        for r in finished:
            curve = curves.get(r.id, {}).get(self.metric, [])
            self.searcher.tell(Outcome(r.params, r.state, r.value, curve, number=r.number, meta=self._lineage.get(r.id)))
            self.scheduler.on_launch(r.id, r.params)
            for step, value in curve:
                self.scheduler.on_report(r.id, step, value)
            self.scheduler.on_result(r.id, r.state, r.value)
        reruns = [r for r in records if r.state == "interrupted"]
        for r in reruns:
            self.searcher.tell(Outcome(r.params, "interrupted", number=r.number, meta=self._lineage.get(r.id)))
        return reruns, len(finished)

    def _abandon(self) -> None:
        """Ctrl-C or an error: stop workers, keep every point, mark running trials interrupted."""
        self.summary.reason = "interrupted"
        self.executor.shutdown(kill=True)
        try:
            self._flush()
            self.store.mark_interrupted(self.study.id, list(self._running))
        except Exception:  # noqa: BLE001 - a broken store: the next run marks them interrupted
            pass

    # -- events ---------------------------------------------------------------------------
    def _handle(self, event: Event) -> bool:
        """Take one event; True means the trial must stop."""
        if isinstance(event, Report):
            return self._on_report(event)
        if isinstance(event, (Finished, Failed)):
            self._on_end(event)
            return False
        run = self._running.get(event.trial_id)
        if run is None:
            return True
        row = {"trial_id": event.trial_id, "attempt": run.spec.attempt, "step": event.step}
        if isinstance(event, Scalars):
            self._points.extend((event.trial_id, run.spec.attempt, event.step, k, v) for k, v in event.values.items())
            for name, value in event.values.items():
                self._alert(run, event.step, self.rulebook.scalar(event.trial_id, name, value))
        elif isinstance(event, Histogram):
            summary = {k: v for k, v in vars(event).items() if k not in row}  # the event is the summary
            self._batch["histograms"].append({**row, **summary, "stats": json.dumps(event.stats)})
            self._alert(run, event.step, self.rulebook.histogram(event.trial_id, event.name, summary))
        elif isinstance(event, SliceMetric):
            self._batch["slices"].append({**row, "slice": event.slice, "metric": event.metric,
                                          "value": event.value if math.isfinite(event.value) else None, "n": event.n})
        elif isinstance(event, Checkpoint):
            path = self.store.save_artifact(self.study.name, run.spec.number, f"checkpoint-a{run.spec.attempt}",
                                            event.step, bytes(event.data), "pt")
            self._batch["checkpoints"].append({**row, "path": path, "created_at": time.time()})
        elif isinstance(event, Sample):
            path = payload = None
            if event.kind in _FILE_KINDS:  # the driver writes files, so workers need no shared disk
                path = self.store.save_artifact(self.study.name, run.spec.number, event.name, event.step,
                                                bytes(event.data), _FILE_KINDS[event.kind])
            else:
                payload = str(event.data)
            self._batch["samples"].append({**row, "name": event.name, "kind": event.kind, "path": path,
                                           "payload": payload})
        self._flush_if_due()
        return run.rule_stop is not None

    def _alert(self, run: _Running, step: int, fired: list[Fired]) -> None:
        for f in fired:
            self._batch["alerts"].append(alert_row(run.spec.trial_id, run.spec.attempt, step, f.rule.label,
                                                   f.quantity, f.value, f.rule.action, f.message))
            if f.rule.action == "stop" and run.rule_stop is None:
                run.rule_stop = "diverged" if f.rule.finite else "pruned"
            for cb in self.callbacks:
                cb.on_alert(run.spec.number, step, f.message, f.rule.action)

    def _on_report(self, event: Report) -> bool:
        run = self._running.get(event.trial_id)
        if run is None:
            return True  # a straggler from a trial already ended
        attempt = run.spec.attempt
        self._points.extend((event.trial_id, attempt, event.step, k, v) for k, v in event.metrics.items())
        run.last.update(event.metrics)
        objective = event.metrics.get(self.metric)
        if objective is not None and not (run.pruned or run.diverged):
            run.curve.append((event.step, objective))
            if not math.isfinite(objective):
                run.diverged = True
            elif self.scheduler.on_report(event.trial_id, event.step, objective) == Decision.STOP:
                run.pruned = True
        for name, value in event.metrics.items():
            self._alert(run, event.step, self.rulebook.scalar(event.trial_id, name, value))
        for cb in self.callbacks:
            cb.on_report(run.spec.number, event.step, event.metrics)
        self._flush_if_due()
        return run.pruned or run.diverged or run.rule_stop is not None

    def _on_end(self, event: Finished | Failed) -> None:
        run = self._running.pop(event.trial_id, None)
        if run is None:
            return
        if isinstance(event, Failed) and event.retryable and run.spec.attempt < self.max_retries:
            self._retry(run, event)
            return
        values = dict(run.last)
        error = None
        if isinstance(event, Failed):
            state, error = "failed", f"{event.message}\n\n{event.traceback}".strip()
        else:
            returned = dict(event.metrics or {})
            if "" in returned:  # the function returned a bare number: it is the objective
                returned[self.metric] = returned.pop("")
            values.update(returned)
            value = values.get(self.metric)
            if run.diverged or run.rule_stop == "diverged" or (value is not None and not math.isfinite(value)):
                state = "diverged"
            elif run.pruned or event.pruned or run.rule_stop == "pruned":
                state = "pruned"
            elif value is None:
                state = "failed"
                error = (f"MissingObjective: the trial function finished without reporting {self.metric!r}; "
                         f"report it with trial.report(step, {self.metric}=...) or return "
                         f"{{{self.metric!r}: ...}}.")
            else:
                state = "completed"
        value = values.get(self.metric)
        self.store.finish_trial(event.trial_id, state, value, values, error, self._take_batch())
        self._last_flush = time.monotonic()
        self.searcher.tell(Outcome(run.spec.params, state, value, run.curve, run.token, run.spec.number, run.meta))
        self.scheduler.on_result(event.trial_id, state, value)
        self.summary.outcomes[state] = self.summary.outcomes.get(state, 0) + 1
        record = TrialRecord(
            id=event.trial_id, number=run.spec.number, state=state, params=run.spec.params, seed=run.spec.seed,
            attempt=run.spec.attempt, value=value, values=values, error=error, created_at=0.0,
            started_at=None, finished_at=time.time(), study_id=self.study.id,
        )
        for cb in self.callbacks:
            cb.on_trial_end(record)

    def _retry(self, run: _Running, event: Failed) -> None:
        """The worker died under this trial: keep what it logged, note why, run it again (same
        number, parameters and seed; the next attempt)."""
        message = f"{event.message} Running it again (retry {run.spec.attempt + 1} of at most {self.max_retries})."
        self._batch["alerts"].append(alert_row(run.spec.trial_id, run.spec.attempt, 0, "worker died", "", None,
                                               "retry", message))
        self._flush()
        attempt = self.store.restart_trial(run.spec.trial_id)
        self._retries.append((replace(run.spec, attempt=attempt), run.token, run.meta))
        self.summary.retried += 1

    def _flush_if_due(self) -> None:
        pending = len(self._points) + sum(len(rows) for rows in self._batch.values())
        if pending >= _FLUSH_POINTS or (pending and time.monotonic() - self._last_flush >= _FLUSH_SECONDS):
            self._flush()

    def _take_batch(self) -> dict[str, list[dict[str, Any]]]:
        """Everything buffered, as rows by table; the buffers start empty again."""
        batch = {"metrics": point_rows(self._points), **self._batch}
        self._points, self._batch = [], {k: [] for k in self._batch}
        return batch

    def _flush(self) -> None:
        """Write every buffered point and row in one transaction."""
        self.store.write_batch(self._take_batch())
        self._last_flush = time.monotonic()
