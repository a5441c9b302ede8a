"""The driver: the one loop that owns a study run.

It asks the searcher, launches trials on an executor, receives their events, lets the
scheduler stop or continue them, tells the searcher the results and writes everything to the
store. Workers never decide anything. Because every step is in the store, a killed driver is
resumed by running it again: finished trials are kept and replayed into the searcher and
scheduler, interrupted ones re-run (same number, same parameters, next attempt), and the
study reaches exactly ``n_trials`` finished trials.

Several drivers may run one study at once (by accident, or on purpose against one database): each
holds a lease on every trial it runs, renewed by a heartbeat thread, and a driver starting takes
over only trials whose lease is stale (their driver died), never a live driver's. Trial numbers,
and the ``n_trials`` cap, are claimed in the database, so no number is used twice. A driver with
nothing left to start waits for the other drivers' last trials and re-runs any whose driver dies,
so the study ends with exactly ``n_trials`` finished.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from tuneloop.alerts import Fired, Rule, RuleBook
from tuneloop.callbacks import Callback
from tuneloop.errors import ConfigError, NotFound
from tuneloop.objectives import Judge
from tuneloop.run._executor import Executor
from tuneloop.run.events import (
    Attrs,
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
from tuneloop.search import Lineage, Outcome, Proposal, Searcher, check_partial, fill
from tuneloop.store import StoreProtocol, StudyRecord, TrialRecord, TrialState

_FLUSH_SECONDS = 1.0  # metric points reach the store at least this often (live dashboards)
_FLUSH_POINTS = 2000
_FILE_KINDS = {"image": "png", "predictions": "npz"}  # samples stored as files, by extension
LEASE_HEARTBEAT_SECONDS = 5.0  # how often a driver renews the leases of the trials it runs
LEASE_STALE_SECONDS = 30.0  # a lease not renewed for this long is a dead driver's: its trials are taken over
_ADOPT_SECONDS = 0.5  # how often a driver with nothing left to start looks for trials a dead driver left
_TAKEABLE = (TrialState.RUNNING.value, TrialState.INTERRUPTED.value)  # what a dead driver can leave unfinished
SYNC_SECONDS = 2.0  # how often a driver looks for trials other drivers finished (its searcher learns from them)
QUEUE_SECONDS = 1.0  # how often a running driver looks for newly enqueued trials (it always does at its start)


def judged_curve(judge: Judge, series: dict[str, list[tuple[int, float]]]) -> list[tuple[int, float]]:
    """A stored trial's judged curve: the one metric's points, or the weighted sum at each step where
    every weighed objective was reported."""
    if not judge.scalarized:
        return list(series.get(judge.names[0], []))
    by_step: dict[int, dict[str, float]] = {}
    for name in judge.names:
        for step, value in series.get(name, []):
            by_step.setdefault(step, {})[name] = value
    scored = ((step, judge.score(metrics)) for step, metrics in sorted(by_step.items()))
    return [(step, v) for step, v in scored if v is not None]


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
    elsewhere: int = 0  # unfinished trials another live driver of the study was running (left alone)


@dataclass(frozen=True)
class _Placed:
    """A planner's trial as stored with it: its lineage, the trial it continues (a number) and its budget."""

    lineage: Lineage
    parent: int | None = None
    budget: dict[str, Any] | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> _Placed:
        info = dict(row.get("info") or {})
        budget = info.pop("budget", None)
        return cls(Lineage(int(row["member"]), int(row["generation"]), str(row["event"]), info), row["parent"], budget)


@dataclass
class _Running:
    spec: TrialSpec
    token: Any
    curve: list[tuple[int, float]] = field(default_factory=list)
    last: dict[str, float] = field(default_factory=dict)
    pruned: bool = False
    diverged: bool = False
    rule_stop: TrialState | None = None  # DIVERGED or PRUNED when a stop rule fired
    placed: _Placed | None = None  # a planner's lineage of this trial

    @property
    def lineage(self) -> Lineage | None:
        return None if self.placed is None else self.placed.lineage


class Driver:
    """Runs ``fn`` over configurations from ``searcher`` until the study has ``n_trials``.

    Build it through :func:`tuneloop.run.launch`, which turns plug-in names into plug-ins."""

    def __init__(
        self,
        *,
        store: StoreProtocol,
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
        lease_every: float | None = None,
        lease_stale: float | None = None,
    ) -> None:
        self.store, self.study, self.fn = store, study, fn
        self.searcher, self.scheduler, self.executor = searcher, scheduler, executor
        self.n_trials, self.seed, self.budget = n_trials, seed, dict(budget or {})
        self.timeout, self.callbacks, self.experiment_path = timeout, list(callbacks), experiment_path
        self.metric = study.metric
        self.objectives = study.objectives  # what the searcher optimizes, its constraints
        self.judge = self.objectives.judged  # what the scheduler compares: a metric or a weighted sum
        self.phase, self.fit_on, self.budget_of = phase, fit_on, budget_of  # finalize's runs differ here
        self.checkpoints = scheduler.checkpoints  # planners continue trials from them
        self._placed: dict[int, _Placed] = {}  # trial id -> where a planner put it
        self._running: dict[int, _Running] = {}
        self.max_retries = max_retries
        self._retries: list[tuple[TrialSpec, Any, _Placed | None]] = []  # (spec, token, placement) to run again
        from tuneloop.store import Lease, LogBatch  # SQLAlchemy: loaded by the driver, not by workers

        self._batch = LogBatch()
        self.rulebook = RuleBook(list(rules))
        self._last_flush = time.monotonic()
        self.summary = RunSummary(study.name)
        self.lease = Lease.mine()  # this run's claim on the trials it runs
        self.lease_every = LEASE_HEARTBEAT_SECONDS if lease_every is None else lease_every
        self.lease_stale = LEASE_STALE_SECONDS if lease_stale is None else lease_stale
        self._queue_checked = -math.inf  # when the queue of enqueued trials was last found empty
        self._mine: set[int] = set()  # the trial numbers this run launched
        self._told: set[int] = set()  # ids of the finished trials the searcher has been told
        self._synced = time.monotonic()  # when other drivers' finished trials were last looked for
        self._sequence_checked = False  # whether this run's first proposal has been checked (_own_sequence)

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> RunSummary:
        heartbeat = _Heartbeat(self.store, self.lease.owner, self.lease_every)
        try:
            return self._run()
        finally:
            heartbeat.stop()
            with contextlib.suppress(Exception):  # a broken store: those leases go stale instead
                self.store.release_leases(self.lease.owner)  # claimed but not run: free for the next driver

    def _run(self) -> RunSummary:
        start = time.monotonic()
        reruns, finished = self._recover()
        needed = None if self.n_trials is None else self.n_trials - finished
        if needed is not None and needed <= 0:
            self.summary.reason, self.summary.finished_total = "nothing to do", finished
            return self.summary
        if needed is not None and len(reruns) > needed:  # taken over but not run now: free for another driver
            self.store.release_leases(self.lease.owner, [r.id for r in reruns[needed:]])
            reruns = reruns[:needed]
        new_needed = None if needed is None else needed - len(reruns)
        next_number: int | None = None  # the number to try first; another driver may have taken it
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
                        self._launch(*self._retries.pop(0))
                        continue
                    if reruns:
                        record = reruns.pop(0)
                        attempt = self.store.restart_trial(record.id)
                        placed = self._placed.get(record.id)
                        parent, budget = (None, None) if placed is None else (placed.parent, placed.budget)
                        self._launch(self._spec(record.id, record.number, attempt, record.params, record.seed,
                                                parent, budget), None, placed)
                        continue
                    if new_needed is not None and new_launched >= new_needed:
                        launching = False
                        break
                    queued = self._claim_queued()  # enqueued configurations run before the searcher's own
                    if queued is not None:
                        self._launch(*queued)
                        new_launched += 1
                        continue
                    self._learn_from_others()
                    proposals = self.searcher.ask(1)
                    if not proposals:
                        if self.searcher.waiting and self.executor.running > 0:
                            break  # a generation or rung is still running: ask again when it ends
                        launching, self.summary.reason = False, "exhausted"
                        break
                    p = proposals[0]
                    claimed = self.store.claim_trial(self.study.id, p.params, self._seed_of, self.lease,
                                                     limit=self.n_trials, number=next_number)
                    if claimed is None:  # other drivers of the study have started the rest of its trials
                        queued = self._claim_queued(force=True)  # or one enqueued below the cap still waits
                        if queued is None:
                            launching = False
                            break
                        self._launch(*queued)
                        new_launched += 1
                        continue
                    trial_id, number, seed = claimed
                    next_number = number + 1
                    if not self._sequence_checked:
                        p = self._own_sequence(trial_id, number, p)
                    placed = self._place(trial_id, p)
                    self._launch(self._spec(trial_id, number, 0, p.params, seed, p.resume_from, p.budget), p.token,
                                 placed)
                    new_launched += 1
                if not launching and self.executor.running == 0 and not self._retries:
                    reruns = [] if self.summary.reason == "timeout" else self._adopt(start)
                    if not reruns:
                        break
                    launching = True  # a dead driver's trials: run here, then stop again
                    continue
                if self._retries and not launching and self.executor.free_slots > 0:
                    self._launch(*self._retries.pop(0))
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

    def _seed_of(self, number: int) -> int:
        return trial_seed(self.seed, number)

    def _spec(self, trial_id: int, number: int, attempt: int, params: dict[str, Any], seed: int,
              resume_from: int | None = None, budget: dict[str, Any] | None = None) -> TrialSpec:
        full = self.budget if self.budget_of is None else {**self.budget, **self.budget_of(params)}
        resume, refused = None, None
        if resume_from is not None:  # continue from that trial's last checkpoint (none saved: a fresh start)
            try:
                resume = self.store.latest_checkpoint(self.store.trial(self.study.id, resume_from).id)
            except NotFound as e:  # a stored path outside the artifact folder: this trial fails, the study goes on
                refused = f"Trial {resume_from}'s checkpoint was refused: {e}"
        return TrialSpec(trial_id, number, attempt, self.study.name, dict(params), seed, {**full, **(budget or {})},
                         phase=self.phase, fit_on=self.fit_on, checkpoint=self.checkpoints,
                         resume=None if resume is None else str(resume[1]), resume_step=None if resume is None else resume[0],
                         resume_error=refused)

    def _claim_queued(self, force: bool = False) -> tuple[TrialSpec, Any, None] | None:
        """The first enqueued trial (below ``n_trials``), its missing parameters chosen by the searcher,
        claimed with this run's lease: (spec, token, None) to launch; None when none waits (looked up at
        most every QUEUE_SECONDS unless ``force``). Planners plan their own generations: not with them."""
        now = time.monotonic()
        if self.checkpoints or (not force and now - self._queue_checked < QUEUE_SECONDS):
            return None
        for record in self.store.trials(self.study.id, states=[TrialState.QUEUED.value]):
            if self.n_trials is not None and record.number >= self.n_trials:
                break
            try:  # the stored values are checked again: the database may have been edited since
                fixed = check_partial(self.study.space, record.params, f"Enqueued trial {record.number}")
            except ConfigError as e:
                if self.store.claim_queued(record.id, record.params, self.lease):
                    self.store.finish_leased_trial(record.id, self.lease.owner, TrialState.FAILED.value, None, {}, str(e))
                continue
            p = fill(self.searcher, self.study.space, fixed, self._seed_of(record.number))
            if self.store.claim_queued(record.id, p.params, self.lease):
                return self._spec(record.id, record.number, 0, p.params, record.seed, None, p.budget), p.token, None
            # another driver claimed it first: this searcher's copy of the configuration runs there
            self.searcher.tell(Outcome(p.params, TrialState.FAILED, token=p.token, number=record.number))
        self._queue_checked = now
        return None

    def _place(self, trial_id: int, p: Proposal) -> _Placed | None:
        """Where a planner's trial sits (member, generation, parent, event), stored with it."""
        if p.lineage is None:
            return None
        lin = p.lineage
        self.store.add_lineage(trial_id, lin.member, lin.generation, p.resume_from, lin.event,
                               {"budget": p.budget, **lin.info})
        self._placed[trial_id] = _Placed(lin, p.resume_from, p.budget)
        return self._placed[trial_id]

    def _own_sequence(self, trial_id: int, number: int, p: Proposal) -> Proposal:
        """This run's first proposal, just claimed as trial ``number``. Every driver builds its searcher
        from the study's seed, so a driver that is not the study's only one (trials below ``number``
        that it did not run: another driver's, or a past run's) would propose what the first driver
        proposed: it reseeds its searcher and proposes this trial again. A lone driver on a fresh study
        keeps the seed's sequence (a fixed seed reproduces its configurations)."""
        self._sequence_checked = True
        if all(n in self._mine for n in range(number)) or not self.searcher.reseed():
            return p
        fresh = self.searcher.ask(1)
        if not fresh or fresh[0].lineage is not None or not self.store.repropose(trial_id, self.lease.owner,
                                                                                  fresh[0].params):
            return p  # the searcher had nothing else (the trial runs as claimed; a pending proposal is dropped)
        self.searcher.tell(Outcome(p.params, TrialState.FAILED, token=p.token, number=number))  # never run
        return fresh[0]

    def _launch(self, spec: TrialSpec, token: Any, placed: _Placed | None = None) -> None:
        self._mine.add(spec.number)
        self._running[spec.trial_id] = _Running(spec, token, placed=placed)
        self.scheduler.on_launch(spec.trial_id, spec.params)
        self.summary.launched += 1
        for cb in self.callbacks:
            cb.on_trial_start(spec.number, spec.params)
        self.executor.submit(spec)

    def _recover(self) -> tuple[list[TrialRecord], int]:
        """Take over the trials no live driver holds (a dead driver's running ones become interrupted)
        to run them again; replay finished ones. A live driver's trials are left alone and not counted."""
        died = {r.id for r in self.store.trials(self.study.id, states=[TrialState.RUNNING.value])}
        taken = set(self.store.take_over(self.study.id, self.lease, self.lease_stale))
        taken -= self._fail_worn_out(taken & died)
        records = self.store.trials(self.study.id)
        self._placed = {i: _Placed.from_row(row) for i, row in self.store.lineage(self.study.id).items()}
        finished = [r for r in records if TrialState.of(r.state).finished]
        self._replay(finished)
        reruns = [r for r in records if r.id in taken]
        self.summary.elsewhere = sum(r.state in (TrialState.RUNNING, TrialState.INTERRUPTED) and r.id not in taken
                                     for r in records)  # queued ones are this run's to claim
        for r in reruns:
            self.searcher.tell(Outcome(r.params, TrialState.INTERRUPTED, number=r.number, lineage=self._lineage(r.id)))
        return reruns, len(finished)

    def _replay(self, finished: list[TrialRecord]) -> None:
        """Tell the searcher and scheduler trials that finished outside this run (before it started,
        or under another driver), curves included."""
        curves = self.store.series([r.id for r in finished], names=self.judge.names) if finished else {}
        for r in finished:
            curve = judged_curve(self.judge, curves.get(r.id, {}))
            self.searcher.tell(self._outcome(r.params, r.state, r.values, curve, None, r.number, self._lineage(r.id)))
            self.scheduler.replay(r.id, r.params, curve, r.state, self.judge.score(r.values))
            self._told.add(r.id)

    def _learn_from_others(self) -> None:
        """Before a proposal, at most every SYNC_SECONDS: replay the trials other drivers of the study
        finished meanwhile, so every driver's searcher (and scheduler) learns from the whole study.
        One COUNT when none did (a lone driver); planners plan from their own generations."""
        now = time.monotonic()
        if self.checkpoints or now - self._synced < SYNC_SECONDS:
            return
        self._synced = now
        if self.store.count_finished(self.study.id) <= len(self._told):
            return
        new = [n for i, n in self.store.finished_numbers(self.study.id).items()
               if i not in self._told and i not in self._running]
        if new:
            self._replay([r for r in self.store.trials(self.study.id, numbers=new) if TrialState.of(r.state).finished])

    def _adopt(self, start: float) -> list[TrialRecord]:
        """Nothing left to start: wait while other live drivers still run trials below ``n_trials``,
        and take over any whose driver dies meanwhile (returned, to run again here), so the study ends
        with exactly ``n_trials`` finished however many drivers die; [] once none is left (or on timeout)."""
        if self.n_trials is None:
            return []  # a run without a total ends on its timeout, not with the study
        below = self.n_trials
        while True:
            died = {r.id for r in self.store.trials(self.study.id, states=[TrialState.RUNNING.value])}
            taken = set(self.store.take_over(self.study.id, self.lease, self.lease_stale))
            taken -= self._fail_worn_out(taken & died)
            left = [r for r in self.store.trials(self.study.id, states=_TAKEABLE) if r.number < below]
            adopted = [r for r in left if r.id in taken]
            if taken - {r.id for r in adopted}:  # past this run's total: not ours to run
                self.store.release_leases(self.lease.owner, taken - {r.id for r in adopted})
            if adopted:
                self._placed.update({i: _Placed.from_row(row) for i, row in self.store.lineage(self.study.id).items()
                                     if i in taken})
                for r in adopted:  # the searcher hears the configuration is taken (its result comes)
                    self.searcher.tell(Outcome(r.params, TrialState.INTERRUPTED, number=r.number,
                                               lineage=self._lineage(r.id)))
                return adopted
            if not left or (self.timeout is not None and time.monotonic() - start >= self.timeout):
                self.summary.elsewhere = len(left)  # what other live drivers still run as this one ends
                return []
            time.sleep(min(self.lease_every, _ADOPT_SECONDS))  # live drivers' trials: look again soon

    def _fail_worn_out(self, ids: set[int]) -> set[int]:
        """Of the trials just taken over from a driver that died while running them (``ids``), fail
        those that already ran ``max_retries`` times again, as a worker's death does; their ids. A
        trial interrupted by Ctrl-C is not among them: it always resumes."""
        if not ids:
            return set()
        worn = [r for r in self.store.trials(self.study.id, states=[TrialState.INTERRUPTED.value])
                if r.id in ids and r.attempt >= self.max_retries]
        for r in worn:
            error = (f"WorkerDied: the driver running this trial died {r.attempt + 1} times (its lease went stale); "
                     f"not run again (max_retries={self.max_retries}). Look for what kills it (memory, time "
                     f"limits), or raise --max-retries.")
            self.store.finish_leased_trial(r.id, self.lease.owner, TrialState.FAILED.value, None, r.values, error)
        return {r.id for r in worn}

    def _lineage(self, trial_id: int) -> Lineage | None:
        placed = self._placed.get(trial_id)
        return None if placed is None else placed.lineage

    def _abandon(self) -> None:
        """Ctrl-C or an error: stop workers, keep every point, mark running trials interrupted."""
        self.summary.reason = "interrupted"
        self.executor.shutdown(kill=True)
        with contextlib.suppress(Exception):  # a broken store: their leases go stale and the next run takes them
            self._flush()
            self.store.release_leases(self.lease.owner, interrupt=True)  # the next run may take them at once

    # -- events ---------------------------------------------------------------------------
    def _handle(self, event: Event) -> bool:
        """Take one event; for a Report, True means the trial must stop (a trial stopped between
        reports by an alert rule is the executor's ``cancel``)."""
        if isinstance(event, Report):
            return self._on_report(event)
        if isinstance(event, (Finished, Failed)):
            self._on_end(event)
            return False
        run = self._running.get(event.trial_id)
        if run is None:
            return False  # a straggler from a trial already ended
        if isinstance(event, Attrs):
            self._batch.attrs(event.trial_id, event.values)
            for cb in self.callbacks:
                cb.on_attrs(run.spec.number, event.values)
            return False
        at = (event.trial_id, run.spec.attempt, event.step)
        if isinstance(event, Scalars):
            self._batch.metrics(*at, event.values)
            for name, value in event.values.items():
                self._alert(run, event.step, self.rulebook.scalar(event.trial_id, name, value))
            for cb in self.callbacks:
                cb.on_log(run.spec.number, event.step, event.values)
        elif isinstance(event, Histogram):
            summary = {k: v for k, v in vars(event).items() if k not in ("trial_id", "step")}  # the event is the summary
            self._batch.histogram(*at, **summary)
            self._alert(run, event.step, self.rulebook.histogram(event.trial_id, event.name, summary))
        elif isinstance(event, SliceMetric):
            self._batch.slice(*at, slice=event.slice, metric=event.metric, value=event.value, n=event.n)
        elif isinstance(event, Checkpoint):
            path = self.store.save_artifact(self.study.id, self.study.name, run.spec.number,
                                            f"checkpoint-a{run.spec.attempt}", event.step, bytes(event.data), "pt")
            self._batch.checkpoint(*at, path, time.time())
        elif isinstance(event, Sample):
            if event.kind in _FILE_KINDS:  # the driver writes files, so workers need no shared disk
                data = event.data.encode() if isinstance(event.data, str) else bytes(event.data)
                path = self.store.save_artifact(self.study.id, self.study.name, run.spec.number, event.name,
                                                event.step, data, _FILE_KINDS[event.kind])
                self._batch.sample(*at, name=event.name, kind=event.kind, path=path)
            else:
                self._batch.sample(*at, name=event.name, kind=event.kind, payload=str(event.data))
        self._flush_if_due()
        return False

    def _alert(self, run: _Running, step: int, fired: list[Fired]) -> None:
        for f in fired:
            self._batch.alert(run.spec.trial_id, run.spec.attempt, step, rule=f.rule.label, quantity=f.quantity,
                              value=f.value, action=f.rule.action, message=f.message)
            if f.rule.action == "stop" and run.rule_stop is None:
                run.rule_stop = TrialState.DIVERGED if f.rule.finite else TrialState.PRUNED
                self.executor.cancel(run.spec.trial_id)  # it sees this at its next should_stop or report
            for cb in self.callbacks:
                cb.on_alert(run.spec.number, step, f.message, f.rule.action)

    def _on_report(self, event: Report) -> bool:
        run = self._running.get(event.trial_id)
        if run is None:
            return True  # a straggler from a trial already ended
        self._batch.metrics(event.trial_id, run.spec.attempt, event.step, event.metrics)
        run.last.update(event.metrics)
        objective = self.judge.score(event.metrics)  # the judged metric, or the weighted sum of objectives
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
        state, values, error = self._verdict(run, event)
        value = values.get(self.metric)
        recorded = self.store.finish_leased_trial(event.trial_id, self.lease.owner, state.value, value, values, error,
                                                  self._batch.take())
        self._last_flush = time.monotonic()
        if recorded:
            self._told.add(event.trial_id)
        if not recorded:  # this driver stalled past the stale limit and another one took the trial over
            self.searcher.tell(Outcome(run.spec.params, TrialState.INTERRUPTED, None, run.curve, run.token,
                                       run.spec.number, run.lineage))
            return
        self.searcher.tell(self._outcome(run.spec.params, state, values, run.curve, run.token, run.spec.number,
                                         run.lineage))
        self.scheduler.on_result(event.trial_id, state, self.judge.score(values))
        self.summary.outcomes[state.value] = self.summary.outcomes.get(state.value, 0) + 1
        record = TrialRecord(
            id=event.trial_id, number=run.spec.number, state=state, params=run.spec.params, seed=run.spec.seed,
            attempt=run.spec.attempt, value=value, values=values, error=error, created_at=0.0,
            started_at=None, finished_at=time.time(), study_id=self.study.id,
        )
        for cb in self.callbacks:
            cb.on_trial_end(record)

    def _outcome(self, params: dict[str, Any], state: TrialState, values: dict[str, float], curve: list[tuple[int, float]],
                 token: Any, number: int, lineage: Lineage | None) -> Outcome:
        """What the searcher hears of a finished trial: its primary objective, every objective and how
        far it breaks each constraint."""
        vector = self.objectives.vector(values)
        return Outcome(params, state, values.get(self.metric), curve, token, number, lineage, values=vector,
                       violations=self.objectives.violations(values), judged=self.judge.score(values))

    def _verdict(self, run: _Running, event: Finished | Failed) -> tuple[TrialState, dict[str, float], str | None]:
        """How a trial ended: its state, final values and error."""
        values = dict(run.last)
        if isinstance(event, Failed):
            return TrialState.FAILED, values, f"{event.message}\n\n{event.traceback}".strip()
        returned = dict(event.metrics or {})
        if "" in returned:  # the function returned a bare number: it is the objective
            returned[self.metric] = returned.pop("")
        values.update(returned)
        finals = [values.get(name) for name in self.objectives.names]
        if run.diverged or run.rule_stop is TrialState.DIVERGED or any(
                v is not None and not math.isfinite(v) for v in finals):
            return TrialState.DIVERGED, values, None
        if run.pruned or event.pruned or run.rule_stop is TrialState.PRUNED:
            return TrialState.PRUNED, values, None
        missing = [name for name in self.objectives.metrics if values.get(name) is None]
        if missing:
            name = missing[0]
            what = "objective" if name in self.objectives.names else "constrained metric"
            return TrialState.FAILED, values, (
                f"MissingObjective: the trial function finished without reporting {name!r} (the study's {what}); "
                f"report it with trial.report(step, {name}=...) or return {{{name!r}: ...}}.")
        return TrialState.COMPLETED, values, None

    def _retry(self, run: _Running, event: Failed) -> None:
        """The worker died under this trial: keep what it logged, note why, run it again (same
        number, parameters and seed; the next attempt)."""
        message = f"{event.message} Running it again (retry {run.spec.attempt + 1} of at most {self.max_retries})."
        self._batch.alert(run.spec.trial_id, run.spec.attempt, 0, rule="worker died", quantity="", value=None,
                          action="retry", message=message)
        self._flush()
        attempt = self.store.restart_trial(run.spec.trial_id)
        self._retries.append((replace(run.spec, attempt=attempt), run.token, run.placed))
        self.summary.retried += 1

    def _flush_if_due(self) -> None:
        pending = len(self._batch)
        if pending >= _FLUSH_POINTS or (pending and time.monotonic() - self._last_flush >= _FLUSH_SECONDS):
            self._flush()

    def _flush(self) -> None:
        """Write every buffered point and row in one transaction."""
        self.store.write_batch(self._batch.take())
        self._last_flush = time.monotonic()


class _Heartbeat:
    """Renews a driver's leases every ``every`` seconds on a daemon thread: other drivers of the
    study see its trials as live for as long as it runs, even inside a long inline trial."""

    def __init__(self, store: StoreProtocol, owner: str, every: float) -> None:
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(store, owner, every), daemon=True,
                                        name="tuneloop-heartbeat")
        self._thread.start()

    def _beat(self, store: StoreProtocol, owner: str, every: float) -> None:
        while not self._stopped.wait(every):
            with contextlib.suppress(Exception):  # a busy or unreachable store: the next beat tries again
                store.renew_leases(owner)

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=1.0)  # a beat stuck on a busy store finishes on its own (daemon)
