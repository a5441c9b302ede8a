"""The epoch loop of ``fit`` for populations: buckets, chunks, steps, epochs, members leaving."""

from __future__ import annotations

import math
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
             refill: Refill | None = None) -> list[FitResult | BaseException]:
    """Like :func:`fit_population`, but a job that fails gets its exception as its result.

    A rolling population: slots that members leave are refilled at epoch boundaries. First from the
    bucket's own members still waiting (a bucket larger than ``max_members`` or than memory allows),
    then, with ``refill``, from new jobs: ``refill(free, key)`` is called with the free slots
    (``max_members``, else the population's starting size, less the members still training) and the
    population's key; each job it returns is prepared as ``fit`` would be and, if it shares the key
    and its model fits the blocks as they are (an architecture a padded population was built for, an
    MLP within its widths and depths), joins at once, counting its own epochs from its start; the
    rest (and any beyond ``free``; all of them when no member is left) are trained after the
    population ends, bucketed as usual, with refills of their own. Results: one per job of ``jobs``
    in order, then one per job ``refill`` returned, in the order returned."""
    run = _Run(fit_defaults(), {}, [], refill, fast, {"fast": fast, "fused": fused, "exact": exact})
    members = [m for m in (run.prepare(job, trial) for job, trial in zip(jobs, trials)) if m is not None]
    pending = _buckets(members)
    while pending:
        run.waiting = pending.pop(0)
        while run.waiting:
            cap = max_members or len(run.waiting)
            chunk, run.waiting = run.waiting[:cap], run.waiting[cap:]
            _train_chunked(chunk, run, max_members)
        pending += _buckets(run.deferred)
        run.deferred = []
    return cast(list[FitResult | BaseException], run.results)  # no None left: every job has its result or error


@dataclass
class _Run:
    """One call of :func:`run_jobs`: every job's result, the shared data copies, and the refill."""

    defaults: dict[str, Any]
    fingerprints: dict[Any, Any]  # data fingerprints and the shared device copies
    results: list[Any]  # by job: jobs first, then refilled jobs in the order returned
    refill: Refill | None
    fast: bool
    options: dict[str, Any]
    deferred: list[Member] = field(default_factory=list)  # refilled members that train after this population
    waiting: list[Member] = field(default_factory=list)  # the bucket's members not in a population yet
    held: list[Any] = field(default_factory=list)  # every job: its data's ids key the fingerprints while it runs

    def prepare(self, job: Mapping[str, Any], trial: Any) -> Member | None:
        """Job number ``len(results)`` as a member; None (its error its result) where it fails."""
        index = len(self.results)
        self.results.append(None)
        self.held.append(job)
        unknown = set(job) - set(self.defaults) - {"model", "train", "val"}
        try:
            if unknown:
                raise ConfigError(f"fit got unknown arguments: {', '.join(sorted(unknown))}.")
            return prepare(index, {**self.defaults, **job, "trial": trial}, self.fingerprints, pad=self.fast)
        except Exception as exc:  # noqa: BLE001 - one bad job must not stop the others
            self.results[index] = exc
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

def _train_chunked(members: list[Member], run: _Run, max_members: int | None) -> None:
    """Train ``members``, split into chunks that fit in memory; an out-of-memory error before any
    report halves the chunk and tries again."""
    fitting = fitting_members(members)
    size = min(len(members), fitting)
    capacity = min(max_members or size, fitting)  # the slots waiting members and refilled jobs may take
    run.waiting[:0] = members[size:]  # what does not fit waits: it joins as slots free up, or trains next
    pending = [members[:size]]
    while pending:
        chunk = pending.pop(0)
        try:
            _train(chunk, run, max(capacity, len(chunk)))
        except (torch.OutOfMemoryError, MemoryError, RuntimeError) as exc:
            out_of_memory = isinstance(exc, (torch.OutOfMemoryError, MemoryError)) or "memory" in str(exc).lower()
            if out_of_memory and len(chunk) > 1 and not any(m.reported for m in chunk):
                half = len(chunk) // 2
                pending[:0] = [chunk[:half], chunk[half:]]
                continue
            for m in chunk:
                if run.results[m.job] is None:
                    run.results[m.job] = exc
        except Exception as exc:  # noqa: BLE001 - e.g. a model the engine cannot stack
            for m in chunk:
                if run.results[m.job] is None:
                    run.results[m.job] = exc

def _train(members: list[Member], run: _Run, capacity: int) -> None:
    """The epoch loop of ``fit``, for a population; members that join are appended to ``members``."""
    results = run.results
    pop = Population(members, **run.options)
    first = members[0]
    dev = pop.device
    autocast, _ = _mixed_precision(dev, first.args["amp"])
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    x_all, y_all = first.train.x, first.train.y
    per_epoch, size = first.train.per_epoch, first.args["batch_size"]  # the same for all: one bucket key
    start_members = len(members)
    clock = TrainClock()  # the population's wall time: every member trained during all of it
    inspector = MemberInspector()  # fit's histograms, every inspect_every steps of each member
    while pop.members:
        orders = torch.stack([m.train.order(m.epoch) for m in pop.members])  # each member's own epoch
        loss_sum = torch.zeros(len(pop.members), dtype=torch.float64, device=dev)
        seen = [0] * len(pop.members)
        clock.start()
        for i in range(per_epoch):
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
            values, grads = pop.model.loss_and_grad(xb, yb, noise, pop.loss, autocast)
            logging = [j for j, m in enumerate(pop.members)
                       if m.frozen is None and m.trial is not None and m.args["log_every"]
                       and m.step % m.args["log_every"] == 0]
            norms = pop.clip_and_norm(grads, bool(logging))
            inspector.before_update(pop, grads)
            pop.optim.step(grads, lrs)
            inspector.after_update(pop)
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
        _end_epoch(pop, loss_sum.tolist(), seen, results, start_members, clock)
        for m in pop.members:
            m.epoch += 1
        if len(pop.members) < n_before:
            members += _refill(pop, run, capacity, clock.total)

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

def _end_epoch(pop: Population, loss_sums: list[float], seen: list[int], results: list[Any],
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
        if m.trial is not None:
            m.trial.report(epoch, **metrics)
            m.reported = True
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
        _leave(pop, j, results, start_members)
    pop.keep([j for j in range(len(pop.members)) if j not in set(leaving)])

def _refill(pop: Population, run: _Run, capacity: int, trained_s: float) -> list[Member]:
    """The free slots of ``pop`` taken by the bucket's waiting members that fit, then by the jobs
    ``run.refill`` returns that fit; they join ``pop`` now (returned), the other new jobs wait in
    ``run.deferred``."""
    free = capacity - len(pop.members)
    if free <= 0:
        return []
    joining = [m for m in run.waiting if pop.fits(m)][:free]
    run.waiting = [m for m in run.waiting if m not in joining]
    free -= len(joining)
    for job, trial in run.refill(free, pop.key) if run.refill is not None and free > 0 else ():
        m = run.prepare(job, trial)
        if m is None:
            continue
        if free > 0 and pop.fits(m):
            joining.append(m)
            free -= 1
        else:
            run.deferred.append(m)
    if joining:
        pop.add(joining, trained_s)
    return joining

def _leave(pop: Population, j: int, results: list[Any], start_members: int) -> None:
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
        results[m.job] = FitResult(m.net, 0, m.history[-1], m.history, stopped_early=True)
        return
    kept = pop.outputs if m.final else pop.best_outputs
    outputs = None if kept is None else (kept[j].cpu(), m.val.y.cpu())
    finish(trial, m.net, m.best[1], m.classify, m.args["slices"], m.args["predictions"], m.prefix, m.val,
           m.args["seed"], outputs)
    results[m.job] = FitResult(m.net, m.best[1], run_costs(m.best[2], m.history), m.history, stopped_early=m.stopped)


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
