"""The epoch loop of ``fit`` for populations: buckets, chunks, steps, epochs, members leaving."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import torch

from tuneloop.errors import ConfigError
from tuneloop.torch._cost import LATENCY_BATCH, TrainClock, latency_ms, params_m
from tuneloop.torch._fit import FitResult, _mixed_precision, finish, run_costs, save_checkpoint
from tuneloop.torch._population._inspect import MemberInspector
from tuneloop.torch._population._jobs import Member, fit_defaults, prepare
from tuneloop.torch._population._memory import fitting_members, peak_memory_mb
from tuneloop.torch._population._mixed import exact_groups
from tuneloop.torch._population._state import Population
from tuneloop.torch._stacked import signature

Refill = Callable[[int, Any], Sequence[tuple[Mapping[str, Any], Any]]]
"""``refill(free, key) -> [(job, trial), ...]``: called at each epoch boundary of a running population
where members left, with how many slots are free and the population's bucket key (opaque; equal keys
share a population); returns jobs (``fit``'s keyword arguments) and their trials to train next."""

OnResult = Callable[[int, Any], None]
"""``on_result(index, result)``: job ``index`` (numbered as :func:`run_jobs` returns them) has its
result (a ``FitResult`` or its error) now, as its member leaves, not when the whole run ends."""

INTERRUPTED = "The study run was interrupted."


def fit_population(jobs: Sequence[Mapping[str, Any]], *, max_members: int | None = None, fast: bool = True,
                   fused: bool | None = None, exact: bool = False, refill: Refill | None = None) -> list[FitResult]:
    """Train every job (``fit``'s keyword arguments) together; result i is what ``fit(**jobs[i])``
    returns. ``max_members`` caps a population's size (memory caps it too). ``fast=False`` runs
    plain MLPs through vmap and autograd like any model (the hand-written path is checked against
    it); ``fused=False`` uses the step-by-step Adam instead of torch's fused kernel. ``exact=True``
    draws each member's dropout masks as ``nn.Dropout`` does in sequential ``fit`` (the oracle
    tests' mode); by default they come from the same per-member streams in a cheaper, batched way
    (:func:`tuneloop.torch._stacked.drawn_masks`), so models with dropout train to other (equally
    random) masks than ``fit``'s. ``refill``: jobs that join while the population runs (see
    :func:`run_jobs`); their results follow the jobs' in the order ``refill`` returned them. Raises
    the first job's error, if any failed; :func:`run_jobs` returns errors in place instead."""
    results = run_jobs(jobs, [job.get("trial") for job in jobs], max_members=max_members, fast=fast, fused=fused,
                       exact=exact, refill=refill)
    done: list[FitResult] = []
    for r in results:
        if isinstance(r, BaseException):
            raise r
        done.append(r)
    return done

def run_jobs(jobs: Sequence[Mapping[str, Any]], trials: Sequence[Any], *, max_members: int | None = None,
             fast: bool = True, fused: bool | None = None, exact: bool = False,
             refill: Refill | None = None, on_result: OnResult | None = None,
             stop: threading.Event | None = None) -> list[FitResult | BaseException]:
    """Like :func:`fit_population`, but a job that fails gets its exception as its result.

    Jobs are grouped into buckets (:func:`_buckets`), and every bucket's population trains at once,
    one epoch each in turn (a round), so no bucket waits for another to finish: members of every
    bucket reach a scheduler's rungs at the same pace, as trials of worker processes would.

    A rolling population: slots that members leave are refilled at epoch boundaries. First from the
    bucket's own members still waiting (a bucket larger than ``max_members`` or than memory allows),
    then, with ``refill``, from new jobs: ``refill(free, key)`` is called with the free slots
    (``max_members``, else the number of jobs, less the members training, waiting or queued) and the
    population's key; each job it returns is prepared as ``fit`` would be and, if it shares the key
    and its model fits the blocks as they are (an architecture a padded population was built for, an
    MLP within its widths and depths), joins at once, counting its own epochs from its start; a job
    that fits another running population joins that one at its next boundary; the rest start
    populations of their own next round, bucketed as usual, with refills of their own. Results: one
    per job of ``jobs`` in order, then one per job ``refill`` returned, in the order returned;
    ``on_result`` hears of each as it is decided. Once ``stop`` is set, training ends at the next
    step and every job without a result gets a RuntimeError (an interrupted study run)."""
    run = _Run(fit_defaults(), {}, [], refill, fast, {"fast": fast, "fused": fused, "exact": exact},
               on_result=on_result, stop=stop, max_members=max_members)
    members = [m for m in (run.prepare(job, trial) for job, trial in zip(jobs, trials)) if m is not None]
    run.capacity = max_members or max(len(members), 1)
    run.room = run.capacity
    run.queue = _buckets(members)
    while run.queue or run.pops:  # a round: every running population trains one epoch
        _start(run)
        for pop in list(run.pops):
            pop.epoch()
            if pop.done:
                run.pops.remove(pop)
                run.queue += _buckets(pop.leftover())
    for index, result in enumerate(run.results):
        if result is None:  # a bug, not a user's error: still, every job gets an answer
            run.finish(index, RuntimeError("The population engine ended without a result for this fit call."))
    return cast(list[FitResult | BaseException], run.results)  # no None left: every job has its result or error


def _start(run: _Run) -> None:
    """Start populations for the queued buckets while there is room (all of them, unless an
    out-of-memory error shrank the room; one at least when none runs); a bucket larger than memory
    allows starts with what fits, the rest waiting to join it."""
    while run.queue:
        training = sum(len(p.pop.members) for p in run.pops)
        if run.pops and training >= run.room:
            return
        bucket = run.queue.pop(0)
        try:
            run.check()
            fitting = fitting_members(bucket)
        except Exception as exc:  # noqa: BLE001 - e.g. a model the engine cannot run
            for m in bucket:
                run.finish(m.job, exc)
            continue
        size = min(len(bucket), fitting, max(run.room - training, 1))
        cap = max(min(run.max_members or size, fitting), size)  # the slots waiting members and joiners may take
        pop = _Pop(bucket[:size], run, cap, bucket[size:])
        if pop.done:
            run.queue += _buckets(pop.leftover())
        else:
            run.pops.append(pop)


@dataclass
class _Run:
    """One call of :func:`run_jobs`: every job's result, the shared data copies, and the refill."""

    defaults: dict[str, Any]
    fingerprints: dict[Any, Any]  # data fingerprints and the shared device copies
    results: list[Any]  # by job: jobs first, then refilled jobs in the order returned
    refill: Refill | None
    fast: bool
    options: dict[str, Any]
    held: list[Any] = field(default_factory=list)  # every (job, trial): rebuilt on an out-of-memory split; its data's ids key the fingerprints
    on_result: OnResult | None = None
    stop: threading.Event | None = None
    max_members: int | None = None
    capacity: int = 1  # members (training, waiting, queued) the run holds at most: what refill may fill
    room: int = 1  # members training at once: the capacity, less after an out-of-memory error
    queue: list[list[Member]] = field(default_factory=list)  # buckets whose population has not started
    pops: list[_Pop] = field(default_factory=list)  # the populations training, one epoch each a round

    def holding(self) -> int:
        """Members not finished: training, waiting to join a population, or queued."""
        return sum(len(b) for b in self.queue) + sum(len(p.pop.members) + len(p.waiting) for p in self.pops)

    def finish(self, index: int, result: Any) -> None:
        """Job ``index`` is decided (a result or its error); a later word on it changes nothing."""
        if self.results[index] is None:
            self.results[index] = result
            if self.on_result is not None:
                self.on_result(index, result)

    def check(self) -> None:
        """Raise if the run was told to stop (an interrupted study run)."""
        if self.stop is not None and self.stop.is_set():
            raise RuntimeError(INTERRUPTED)

    def prepare(self, job: Mapping[str, Any], trial: Any) -> Member | None:
        """Job number ``len(results)`` as a member; None (its error its result) where it fails."""
        index = len(self.results)
        self.results.append(None)
        self.held.append((job, trial))
        return self.fresh(index)

    def fresh(self, index: int) -> Member | None:
        """Job ``index`` as a member before its first step (its model built anew under its seed); None
        (its error its result) where it fails."""
        job, trial = self.held[index]
        unknown = set(job) - set(self.defaults) - {"model", "train", "val"}
        try:
            if unknown:
                raise ConfigError(f"fit got unknown arguments: {', '.join(sorted(unknown))}.")
            return prepare(index, {**self.defaults, **job, "trial": trial}, self.fingerprints, pad=self.fast)
        except Exception as exc:  # noqa: BLE001 - one bad job must not stop the others
            self.finish(index, exc)
            return None


def _buckets(members: list[Member]) -> list[list[Member]]:
    """``members`` by bucket key, padded buckets probed; each deepest first (more parameter tensors):
    the members that have a layer are then a leading slice of the population, which the mixed-depth
    MLP path runs without gathering rows (results go by job)."""
    buckets: dict[tuple[Any, ...], list[Member]] = {}
    for m in members:
        buckets.setdefault(m.key, []).append(m)
    return [sorted(group, key=lambda m: -sum(1 for _ in m.net.parameters()))
            for b in buckets.values() for group in exact_groups(b)]

def _out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, (torch.OutOfMemoryError, MemoryError)) or (
        isinstance(exc, RuntimeError) and "memory" in str(exc).lower())


class _Pop:
    """One population training in a run: ``epoch()`` trains its members one epoch (each its own),
    reports, lets members leave and refills their slots. ``members`` holds every member it trained
    (joiners appended), ``waiting`` the members that join it as slots free (its own bucket's beyond
    memory or ``max_members``, and refilled jobs another population's boundary gave it)."""

    def __init__(self, members: list[Member], run: _Run, capacity: int, waiting: list[Member]) -> None:
        self.members, self.run, self.capacity, self.waiting = list(members), run, capacity, list(waiting)
        self.done = False
        self.pop: Population = None  # type: ignore[assignment]  # set below unless it cannot be built
        self.start_members = len(members)
        self.clock = TrainClock()  # the population's training time: every member trained during all of it
        self.inspector = MemberInspector()  # fit's histograms, every inspect_every steps of each member
        try:
            self.pop = Population(self.members, **run.options)
        except Exception as exc:  # noqa: BLE001 - e.g. a model the engine cannot stack
            self._fail(exc)
            return
        first = self.members[0]
        self.autocast, _ = _mixed_precision(self.pop.device, first.args["amp"])
        if self.pop.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.pop.device)

    def leftover(self) -> list[Member]:
        """After the population ended: the members that never trained in it (they start another)."""
        return [m for m in self.waiting if self.run.results[m.job] is None]

    def _fail(self, exc: BaseException) -> None:
        """The population cannot go on: an out-of-memory error before any report splits it in two
        (the run's room shrinks, so the halves do not start side by side again); any other error is
        every member's result."""
        self.done = True
        if _out_of_memory(exc) and len(self.members) > 1 and not any(m.reported for m in self.members):
            half = len(self.members) // 2
            training = sum(len(p.pop.members) for p in self.run.pops if p is not self) + len(self.members)
            self.run.room = max(1, min(self.run.room, training) - (len(self.members) + 1) // 2)
            # the halves start from scratch: members rebuilt, not the ones whose steps and schedules ran
            fresh = [self.run.fresh(m.job) for m in self.members]
            restarted = [m for m in fresh if m is not None]
            self.run.queue[:0] = [restarted[:half], restarted[half:]]
            self.members = []
            return
        for m in self.members:
            self.run.finish(m.job, exc)

    def epoch(self) -> None:
        try:
            self._epoch()
        except Exception as exc:  # noqa: BLE001 - out of memory, a model that fails, an interrupted run
            self._fail(exc)

    def _epoch(self) -> None:
        """The epoch loop's body of ``fit``, for every member at once (each at its own epoch)."""
        run, pop, clock = self.run, self.pop, self.clock
        run.check()
        first = pop.members[0]
        dev = pop.device
        x_all, y_all = first.train.x, first.train.y
        per_epoch, size = first.train.per_epoch, first.args["batch_size"]  # the same for all: one bucket key
        orders = torch.stack([m.train.order(m.epoch) for m in pop.members])  # each member's own epoch
        loss_sum = torch.zeros(len(pop.members), dtype=torch.float64, device=dev)
        seen = [0] * len(pop.members)
        clock.start()
        for i in range(per_epoch):
            run.check()
            for j, m in enumerate(pop.members):
                if m.frozen is None and m.step >= m.total:
                    pop.freeze(j)
            active = [j for j, m in enumerate(pop.members) if m.frozen is None]
            if not active:
                break
            index = orders[:, i * size:(i + 1) * size]
            xb, yb = x_all[index], y_all[index]
            lrs = [m.lr() for m in pop.members]
            _one_cycle_hyper(pop)
            noise = pop.model.noise(xb, pop.generators, pop.exact)
            values, grads = pop.model.loss_and_grad(xb, yb, noise, pop.loss, self.autocast)
            logging = [j for j, m in enumerate(pop.members)
                       if m.frozen is None and m.trial is not None and m.args["log_every"]
                       and m.step % m.args["log_every"] == 0]
            norms = pop.clip_and_norm(grads, bool(logging))
            self.inspector.before_update(pop, grads)
            pop.optim.step(grads, lrs)
            self.inspector.after_update(pop)
            finite = torch.isfinite(values)
            bad = [] if bool(finite.all()) else [j for j in range(len(pop.members)) if not bool(finite[j])]
            listed = values.tolist() if logging else []
            for j in logging:
                m = pop.members[j]
                extra = {} if norms is None else {"grad_norm": norms[j]}
                m.trial.log(m.step, **{"step/train_loss": listed[j], "step/lr": lrs[j]}, **extra)
            counted = torch.where(finite, values.double(), 0.0) * index.shape[1]
            if len(active) < len(pop.members):  # members stopped mid-epoch add nothing
                counted[[j for j in range(len(pop.members)) if j not in set(active)]] = 0.0
            loss_sum += counted
            for j, m in enumerate(pop.members):
                if m.frozen is None:
                    if m.args["schedule"] == "one_cycle":
                        _quiet_step(m.sched)
                    m.step += 1
                    seen[j] += index.shape[1]
            for j in bad:
                pop.members[j].diverged = True
                pop.freeze(j)
        clock.stop(dev)
        pop.thaw()
        n_before = len(pop.members)
        _end_epoch(pop, loss_sum.tolist(), seen, run, self.start_members, clock)
        for m in pop.members:
            m.epoch += 1
        if pop.members or len(pop.members) < n_before:  # a boundary: slots to fill, or new jobs to ask for
            self._refill()
        self.done = not pop.members

    def _refill(self) -> None:
        """At an epoch boundary: the free slots taken by waiting members that fit, then, while the run
        holds fewer members than its capacity, by the jobs ``run.refill`` returns: those that fit join
        now, those that fit another running population wait to join it (at its next boundary), the rest
        queue as buckets of their own (a population starts for them next round, beside this one)."""
        run, pop = self.run, self.pop
        free = max(self.capacity - len(pop.members), 0)
        joining = [m for m in self.waiting if pop.fits(m)][:free]
        self.waiting = [m for m in self.waiting if m not in joining]
        free -= len(joining)
        offered = run.capacity - run.holding() - len(joining)
        new: list[Member] = []
        for job, trial in run.refill(offered, pop.key) if run.refill is not None and offered > 0 else ():
            m = run.prepare(job, trial)
            if m is None:
                continue
            if free > 0 and pop.fits(m):
                joining.append(m)
                free -= 1
                continue
            other = next((p for p in run.pops if p is not self and not p.done and p.pop.fits(m)), None)
            if other is not None:
                other.waiting.append(m)
            else:
                new.append(m)
        run.queue += _buckets(new)
        if joining:
            try:
                pop.add(joining, self.clock.total)
            except Exception:
                # the population may be half grown: it fails (see _fail); the joiners start afresh elsewhere
                run.queue += _buckets([f for f in (run.fresh(m.job) for m in joining) if f is not None])
                raise
            self.members += joining


def _one_cycle_hyper(pop: Population) -> None:
    """one_cycle also cycles momentum (beta1 for Adam): read each member's from its torch scheduler."""
    cycling = [j for j, m in enumerate(pop.members) if m.args["schedule"] == "one_cycle"]
    if not cycling:
        return
    for name in ("momentum", "beta1"):
        values = list(pop.optim.hyper[name])
        for j in cycling:
            group = pop.members[j].opt.param_groups[0]
            if name == "momentum" and "momentum" in group:
                values[j] = float(group["momentum"])
            elif name == "beta1" and "betas" in group:
                values[j] = float(group["betas"][0])
        if values != pop.optim.hyper[name]:
            pop.optim.set_hyper(name, values)

def _quiet_step(sched: Any, *args: Any) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched.step(*args)

def _end_epoch(pop: Population, loss_sums: list[float], seen: list[int], run: _Run,
               start_members: int, clock: TrainClock) -> None:
    """Report each member's epoch, select and stop as ``fit`` does; members that ended leave."""
    evaluated = pop.evaluate()
    leaving = []
    improved = []
    for j, m in enumerate(pop.members):
        if m.diverged:
            metrics = {"train_loss": math.nan, f"{m.prefix}loss": math.nan,
                       **({m.select: math.nan} if m.classify else {})}
        else:
            metrics = {"train_loss": loss_sums[j] / max(seen[j], 1), **evaluated[j]}
        if m.args["cost_metrics"]:
            metrics.update(_member_cost(m), train_time_s=m.trained_s + clock.total - m.joined_s,
                           epoch_time_s=clock.last or 0.0)
        epoch = m.epoch
        m.history.append({"epoch": float(epoch), **metrics})
        m.reported = True  # an out-of-memory error from now on fails the member rather than restart it
        if m.trial is not None:
            m.trial.report(epoch, **metrics)
        if m.diverged:
            m.stopped = True
            leaving.append(j)
            continue
        if m.args["schedule"] == "plateau":
            _quiet_step(m.sched, metrics["train_loss"] if m.final else metrics[m.select])
        if m.final or m.best is None or m.better(metrics[m.select], m.best[0]):
            m.best, m.since_best = (metrics[m.select], epoch, metrics), 0
            improved.append(j)
        else:
            m.since_best += 1
        patience = m.args["patience"]
        if (m.trial is not None and m.trial.should_stop()) or (
                not m.final and patience is not None and m.since_best >= patience):
            m.stopped = True
            leaving.append(j)
        elif epoch >= m.n_epochs:
            leaving.append(j)
    if pop.best is not None and improved:
        index = torch.tensor(improved, dtype=torch.long, device=pop.device)
        with torch.no_grad():
            for best, block in zip(pop.best, pop.model.blocks):
                best[index] = block.index_select(0, index)
            if pop.outputs is not None:
                if pop.best_outputs is None:
                    pop.best_outputs = pop.outputs.clone()
                pop.best_outputs[index] = pop.outputs.index_select(0, index)
    if not leaving:
        return
    for j in leaving:
        _leave(pop, j, run, start_members)
    pop.keep([j for j in range(len(pop.members)) if j not in set(leaving)])

def _leave(pop: Population, j: int, run: _Run, start_members: int) -> None:
    """Member j is done: its checkpoint, its selected model, its slices and predictions, its result."""
    m = pop.members[j]
    trial = m.trial
    if trial is not None and getattr(trial, "checkpointing", False) and m.history:
        state = pop.model.state_dict(pop.model.member(j), m.net)
        optimizer = pop.optim.export(j, m.torch_optimizer(), m.lr())
        save_checkpoint(trial, m.history, state, optimizer, m.step, pop.generators[j].get_state())
    m.net.load_state_dict(pop.model.state_dict(pop.model.member(j, pop.best), m.net))
    if trial is not None:
        trial.log(m.step, **{"population/members": float(start_members),
                             "population/peak_mb": peak_memory_mb(pop.device)})
    if m.best is None:
        run.finish(m.job, FitResult(m.net, 0, m.history[-1], m.history, stopped_early=True))
        return
    kept = pop.outputs if m.final else pop.best_outputs
    outputs = None if kept is None else (kept[j].cpu(), m.val.y.cpu())
    finish(trial, m.net, m.best[1], m.classify, m.args["slices"], m.args["predictions"], m.prefix, m.val,
           m.args["seed"], outputs)
    run.finish(m.job, FitResult(m.net, m.best[1], run_costs(m.best[2], m.history), m.history,
                                stopped_early=m.stopped))


def _member_cost(m: Member) -> dict[str, float]:
    """params_m and latency_ms of the member's own model (its architecture at its width; latency does
    not depend on the weights, so the model ``prepare`` built times it), measured once per member and
    timed once per architecture (members of equal shapes share one timing: timing each of 48 equal
    models cost a 48-trial sweep seconds)."""
    if m.cost is None:
        key = (signature(m.net), str(m.val.x.device), tuple(m.val.x.shape[1:]), str(m.val.x.dtype))
        if key not in _LATENCY:
            _LATENCY[key] = latency_ms(m.net, m.val.x[:LATENCY_BATCH])
        m.cost = {"params_m": params_m(m.net), "latency_ms": _LATENCY[key]}
    return m.cost


_LATENCY: dict[tuple[Any, ...], float] = {}  # latency_ms by architecture, input and device, in this process
