"""Ask/tell: trials the caller runs itself, recorded exactly as a driver records its own.

    t = study.ask()                       # params, seed, budget; stored as running, leased
    for epoch in range(t.budget.epochs):
        t.report(epoch, loss=...)         # stored; the study's scheduler decides t.should_stop()
    study.tell(t, {"loss": 0.1})          # or state="pruned" / "failed"

:class:`AskTell` is a :class:`~tuneloop.run.driver.Driver` whose executor runs nothing: the caller
runs each trial, and the trial's reports, logs and end go through the driver's own handlers (store,
scheduler, alert rules, searcher). What ``ask`` returns, in order: a trial whose driver or client
died (its lease went stale), run again unless it used up ``max_retries``; an enqueued configuration;
another seed of the last configuration (``seeds=K``); a new proposal of the searcher.

Leases. A client process that lives while its trials run holds them with a heartbeat thread, as a
driver does. A client that exits between ask and tell (``tuneloop ask`` in a shell loop) holds each
trial for ``lease_seconds`` after its ask and after each report (:class:`~tuneloop.store.HeldLease`);
a driver or client takes it over only after that. Its ``tell`` comes from another process, which
finishes the trial under the lease the asking process left (an ask/tell lease, never a driver's).
"""

from __future__ import annotations

import json
import math
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from tuneloop.alerts import Rule
from tuneloop.errors import ConfigError
from tuneloop.run._executor import InProcessExecutor
from tuneloop.run.driver import LEASE_HEARTBEAT_SECONDS, Driver, _Heartbeat, _Running, judged_curve
from tuneloop.run.events import Failed, Finished, TrialSpec
from tuneloop.schedule import Planner, Scheduler
from tuneloop.search import Outcome, Searcher
from tuneloop.store import Lease, StoreProtocol, StudyRecord, TrialRecord, TrialState
from tuneloop.store._leases import this_host
from tuneloop.store._queue import HeldLease
from tuneloop.trial import Trial, to_metric

CLIENT_PREFIX = "ask-"  # the owner of every ask/tell lease starts so: a tell from another process finishes only those
FINAL_STATES = ("completed", "pruned", "failed")


class _CallerRuns(InProcessExecutor):
    """The executor of ask/tell: the caller runs the trials; this is only their channel to the driver."""

    free_slots = 1
    running = 0

    def submit(self, spec: TrialSpec) -> None:
        pass  # the caller runs it

    def poll(self, timeout: float) -> int:
        return 0


def _not_here(trial: Trial) -> None:
    raise ConfigError("An ask/tell study's trials are run by the client that asked for them.")


class AskTell(Driver):
    """Hands out trials (``ask``) and records how they ended (``tell``); see the module docstring."""

    def __init__(self, *, store: StoreProtocol, study: StudyRecord, searcher: Searcher, scheduler: Scheduler, seed: int,
                 budget: dict[str, Any] | None = None, rules: list[Rule] | None = None, max_retries: int = 1,
                 seeds: int = 1, lease_seconds: float | None = None) -> None:
        if isinstance(scheduler, Planner):
            raise ConfigError(f"The {type(scheduler).__name__} scheduler plans whole generations of trials that "
                              f"tuneloop runs; with ask/tell use none, median, asha or hyperband.")
        if lease_seconds is not None and (isinstance(lease_seconds, bool) or not isinstance(lease_seconds, (int, float))
                                          or not lease_seconds > 0 or not math.isfinite(lease_seconds)):
            raise ConfigError(f"lease_seconds must be a positive number of seconds (how long an asked trial stays "
                              f"its client's without a report). Got {lease_seconds!r:.60} instead.")
        super().__init__(store=store, study=study, fn=_not_here, searcher=searcher, scheduler=scheduler,
                         executor=_CallerRuns(), n_trials=None, seed=seed, budget=budget, rules=rules or (),
                         max_retries=max_retries)
        owner = CLIENT_PREFIX + uuid.uuid4().hex
        self.lease_seconds = lease_seconds
        self.lease: Lease = (Lease(owner, this_host(), os.getpid()) if lease_seconds is None
                             else HeldLease(owner, ("held " + this_host())[:255], os.getpid(), float(lease_seconds)))
        self.seeds = seeds
        self.executor.start(_not_here, self._handle)
        self._heartbeat: _Heartbeat | None = None
        self._held_at = 0.0  # when a held lease was last renewed

    # -- ask --------------------------------------------------------------------------------
    def ask(self, n_trials: int | None = None) -> Trial | None:
        """The next trial to run (see the module docstring); None when the searcher has run out, or
        the study's trial numbers below ``n_trials`` are all taken."""
        self.n_trials = n_trials  # the cap new and enqueued trials are claimed under
        records = self._sync()
        picked = self._rerun() or self._claim_queued(force=True) or self._repeat(records) or self._propose()
        if picked is None:
            return None
        spec, token, placed = picked
        self._launch(spec, token, placed)
        if self.lease_seconds is None and self._heartbeat is None:
            self._heartbeat = _Heartbeat(self.store, self.lease.owner, LEASE_HEARTBEAT_SECONDS)
        return Trial(spec, self.executor)  # type: ignore[arg-type]  # an InProcessExecutor is a Channel

    def _sync(self) -> list[TrialRecord]:
        """Tell the searcher and scheduler every trial that finished since the last look (by any driver
        or client), as the driver replays them when it starts; every trial of the study, by number."""
        records = self.store.trials(self.study.id)
        self._replay([r for r in records if r.state.finished and r.id not in self._told and r.id not in self._running])
        return records

    def _rerun(self) -> tuple[TrialSpec, Any, None] | None:
        """A trial whose driver or client died, taken over to run again; those past ``max_retries``
        are failed, and the others left for the next ask (or a driver)."""
        taken = self.store.take_over(self.study.id, self.lease, self.lease_stale)
        if not taken:
            return None
        by_id = {r.id: r for r in self.store.trials(self.study.id, states=[TrialState.INTERRUPTED.value])}
        chosen = None
        for trial_id in taken:
            r = by_id.get(trial_id)
            if r is None:
                continue
            if r.attempt >= self.max_retries:
                error = (f"Its driver or ask/tell client stopped holding it {r.attempt + 1} times; not run again "
                         f"(max_retries={self.max_retries}).")
                self.store.finish_leased_trial(r.id, self.lease.owner, TrialState.FAILED.value, None, r.values, error)
                self.searcher.tell(Outcome(r.params, TrialState.FAILED, number=r.number))
                self._told.add(r.id)
            elif chosen is None:
                chosen = r
            else:
                self.store.release_leases(self.lease.owner, [r.id])  # the next ask (or a driver) takes it
        if chosen is None:
            return None
        self.searcher.tell(Outcome(chosen.params, TrialState.INTERRUPTED, number=chosen.number))
        attempt = self.store.restart_trial(chosen.id)
        return self._spec(chosen.id, chosen.number, attempt, chosen.params, chosen.seed), None, None

    def _repeat(self, records: list[TrialRecord]) -> tuple[TrialSpec, Any, None] | None:
        """With ``seeds=K``: the latest configuration again while it has fewer than K trials (kept
        in the store, so clients that exit between asks share it)."""
        started = [r for r in records if r.state != TrialState.QUEUED]
        if self.seeds <= 1 or not started:
            return None
        last = started[-1].params
        key = json.dumps(last, sort_keys=True, default=str)
        if sum(json.dumps(r.params, sort_keys=True, default=str) == key for r in started) >= self.seeds:
            return None
        return self._claim(dict(last), None)

    def _propose(self) -> tuple[TrialSpec, Any, Any] | None:
        proposals = self.searcher.ask(1)
        if not proposals:
            return None
        claimed = self._claim(proposals[0].params, proposals[0].token)
        if claimed is None:
            return None
        spec, token, placed = claimed
        if self._sequence_checked:
            return spec, token, placed
        own = self._own_sequence(spec.trial_id, spec.number, proposals[0])  # clients started alike propose apart
        return replace(spec, params=dict(own.params)), own.token, placed

    def _claim(self, params: dict[str, Any], token: Any) -> tuple[TrialSpec, Any, None] | None:
        claimed = self.store.claim_trial(self.study.id, params, self._seed_of, self.lease, limit=self.n_trials)
        if claimed is None:  # every number below the cap is taken
            self.searcher.tell(Outcome(params, TrialState.FAILED, token=token))  # never run: the searcher lets it go
            return None
        trial_id, number, seed = claimed
        return self._spec(trial_id, number, 0, params, seed), token, None

    # -- reports ----------------------------------------------------------------------------
    def _handle(self, event: Any) -> bool:
        stop = super()._handle(event)
        if isinstance(self.lease, HeldLease) and self._running:  # a report renews the trials a client holds
            now = time.monotonic()
            if now - self._held_at >= min(60.0, self.lease.hold / 4):
                self._flush()
                self.store.hold_leases(self.lease)  # type: ignore[attr-defined]  # Store's QueueMixin
                self._held_at = now
        return stop

    # -- tell -------------------------------------------------------------------------------
    def tell(self, target: Trial | int, values: Mapping[str, Any] | float | None = None, state: str = "completed",
             error: str | None = None) -> TrialRecord:
        """End trial ``target`` (a Trial from ask, or its number) as ``state`` with ``values``; the stored record."""
        if state not in FINAL_STATES:
            raise ConfigError(f"A trial is told one of the states {', '.join(map(repr, FINAL_STATES))}. Got "
                              f"{state!r:.60} instead (a trial still running is not told).")
        metrics = self._values(values)
        run, owner = self._running_of(target)
        missing = [m for m in self.objectives.metrics if m not in metrics and m not in run.last]
        if state == "completed" and missing:
            what = "objective" if missing[0] in self.objectives.names else "constrained metric"
            raise ConfigError(f"Telling trial {run.spec.number} completed needs its {what} {missing[0]!r}: "
                              f"study.tell(trial, {{{missing[0]!r}: value, ...}}) (tuneloop tell: --value V --metric NAME=V), or tell it "
                              f"state='pruned' or 'failed'.")
        event: Finished | Failed = (Failed(run.spec.trial_id, error or "Its ask/tell client told it failed.")
                                    if state == "failed" else Finished(run.spec.trial_id, metrics, state == "pruned"))
        held = self.lease
        self.lease = replace(held, owner=owner)  # the lease the asking process left (itself, or another one)
        try:
            self._handle(event)
        finally:
            self.lease = held
        self._told.add(run.spec.trial_id)
        if not self._running and self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None
        (record,) = self.store.trials(self.study.id, numbers=[run.spec.number])
        if not record.state.finished or record.attempt != run.spec.attempt:
            raise ConfigError(f"Trial {run.spec.number} of {self.study.name!r} was taken over after its client's lease "
                              f"went stale, so this result was not recorded; report more often or ask with a longer "
                              f"lease (tuneloop ask --lease-seconds).")
        return record

    def _values(self, values: Mapping[str, Any] | float | None) -> dict[str, float]:
        if values is None:
            return {}
        if not isinstance(values, Mapping):
            return {self.metric: to_metric(self.metric, values)}
        if any(not isinstance(k, str) for k in values):
            raise ConfigError(f"study.tell takes metric names as strings, e.g. {{{self.metric!r}: 0.1}}.")
        return {k: to_metric(k, v) for k, v in values.items()}

    def _running_of(self, target: Trial | int) -> tuple[_Running, str]:
        """The running trial ``target`` names and the owner of its lease; a one-line ConfigError when it
        is unknown, already told or run by a driver."""
        if isinstance(target, Trial):
            if target.study_name != self.study.name:
                raise ConfigError(f"Trial {target.number} belongs to study {target.study_name!r}, not "
                                  f"{self.study.name!r}.")
            number = target.number
        elif isinstance(target, int) and not isinstance(target, bool):
            number = target
        else:
            raise ConfigError(f"study.tell takes a Trial from study.ask() or its number. Got {target!r:.60} instead.")
        found = self.store.trials(self.study.id, numbers=[number])
        if not found:
            raise ConfigError(f"Study {self.study.name!r} has no trial {number}; tuneloop trials "
                              f"{self.study.name} lists them.")
        record = found[0]
        if record.id in self._running:
            return self._running[record.id], self.lease.owner
        if record.state.finished:
            raise ConfigError(f"Trial {number} of {self.study.name!r} was already told ({record.state}); a trial is "
                              f"told once.")
        if record.state != TrialState.RUNNING:
            raise ConfigError(f"Trial {number} of {self.study.name!r} is {record.state}, not running: only a trial "
                              f"handed out by ask (and not taken over since) can be told.")
        lease = self.store.leases(self.study.id).get(record.id)  # type: ignore[attr-defined]  # Store's
        owner = self.lease.owner if lease is None else str(lease["owner"])
        if not owner.startswith(CLIENT_PREFIX):
            raise ConfigError(f"Trial {number} of {self.study.name!r} is being run by a driver (tuneloop run or "
                              f"study.run), not handed out by ask; only asked trials are told.")
        series = self.store.series([record.id], names=self.objectives.metrics).get(record.id, {})
        spec = self._spec(record.id, record.number, record.attempt, record.params, record.seed)
        run = _Running(spec, None, curve=judged_curve(self.judge, series),
                       last={name: points[-1][1] for name, points in series.items() if points})
        self._running[record.id] = run
        self.scheduler.on_launch(record.id, record.params)
        return run, owner

    def close(self) -> None:
        """Write what is buffered and stop the heartbeat (trials still running stay leased until it goes stale)."""
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None
        self._flush()
