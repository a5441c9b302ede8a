"""Schedulers that plan in generations: synchronous successive halving and Population Based
Training. Both continue trials from checkpoints, so they also decide what runs next: each wraps
the searcher (which only proposes the first generation) in a planner of its own.

A generation's trials run in parallel; the next generation is planned when the last one ends,
from the stored results alone, so a killed driver replans the same generation and launches only
what is missing. Every trial records its place: member, generation, the trial it continued from
and why (``start``, ``promote``, ``continue``, ``exploit``).
"""

from __future__ import annotations

import math
import random
from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from tuneloop._validation import check_positive_int, fail
from tuneloop.direction import Direction
from tuneloop.errors import ConfigError
from tuneloop.schedule._base import Decision, Scheduler, schedulers
from tuneloop.search._base import Lineage, Outcome, Proposal, Searcher
from tuneloop.space import Choice, Float, Int, LogFloat, Space
from tuneloop.store import TrialState


class Planner(Scheduler):
    """A scheduler whose trials run whole segments; it plans them through :meth:`plan`."""

    checkpoints = True  # the driver asks every trial to save a checkpoint when it ends
    ends_by_itself = True  # the last generation ends the run

    def __init__(self, mode: Direction | str = Direction.MIN) -> None:
        self.mode = Direction.of(mode, type(self).__name__)

    def on_report(self, trial_id: int, step: int, value: float) -> Decision:
        return Decision.CONTINUE  # segments are never cut short: the plan decides between them

    @abstractmethod
    def plan(self, searcher: Searcher, space: Space, budget: Mapping[str, Any], seed: int) -> Searcher:
        """The searcher the driver uses: ``searcher`` proposes first-generation configurations."""


class Generations(Searcher):
    """Runs generation after generation: generation 0 from the inner searcher, each next one
    planned by :meth:`next_generation` from the results of the last."""

    def __init__(self, inner: Searcher, size: int, mode: Direction) -> None:
        self.inner, self.size, self.mode = inner, size, mode
        self.launched: dict[tuple[int, int], Outcome | None] = {}  # (member, generation) -> result
        self.params: dict[tuple[int, int], dict[str, Any]] = {}
        self.numbers: dict[tuple[int, int], int] = {}
        self.plans: dict[int, list[Proposal]] = {}

    # -- the Searcher interface -----------------------------------------------------------
    def ask(self, n: int = 1) -> list[Proposal]:
        out: list[Proposal] = []
        while len(out) < n:
            p = self._next()
            if p is None:
                break
            key = (_place(p).member, _place(p).generation)
            self.launched[key], self.params[key] = None, dict(p.params)
            out.append(p)
        return out

    def tell(self, outcome: Outcome) -> None:
        if outcome.lineage is None:
            return  # a trial this plan did not launch
        key = (outcome.lineage.member, outcome.lineage.generation)
        self.params[key] = dict(outcome.params)
        if outcome.number is not None:
            self.numbers[key] = outcome.number
        self.launched[key] = None if outcome.pending else outcome
        if key[1] == 0 and not outcome.pending:
            token = outcome.token[1] if isinstance(outcome.token, tuple) else None
            self.inner.tell(replace(outcome, token=token, number=None, lineage=None))

    @property
    def waiting(self) -> bool:
        return any(result is None for result in self.launched.values())

    # -- planning -------------------------------------------------------------------------
    def _next(self) -> Proposal | None:
        generation = max((g for _, g in self.launched), default=0)
        plan = self._plan(generation)
        for p in plan:
            if (_place(p).member, generation) not in self.launched:
                return p
        if len(plan) < self._expected(generation) or self.waiting:
            return None  # generation 0 ran out of configurations, or the generation is still running
        following = self._plan(generation + 1)
        return following[0] if following else None

    def _plan(self, generation: int) -> list[Proposal]:
        if generation not in self.plans:
            if generation == 0:
                self.plans[0] = self._first()
            else:
                results = {m: r for (m, g), r in self.launched.items() if g == generation - 1 and r is not None}
                self.plans[generation] = self.next_generation(generation, results)
        elif generation == 0 and len(self.plans[0]) < self.size:
            self.plans[0] = self._first()
        return self.plans[generation]

    def _first(self) -> list[Proposal]:
        """Generation 0: members launched before a restart keep their configurations; the inner
        searcher fills the rest."""
        plan = list(self.plans.get(0, []))
        planned = {_place(p).member for p in plan}
        for member in range(self.size):
            if member in planned:
                continue
            if (member, 0) in self.params:
                plan.append(self.segment(member, 0, self.params[(member, 0)], None, "start"))
                continue
            fresh = self.inner.ask(1)
            if not fresh:
                self.size = len(plan)  # a small grid: the population is what it could propose
                break
            p = self.segment(member, 0, fresh[0].params, None, "start")
            plan.append(Proposal(p.params, ("inner", fresh[0].token), p.resume_from, p.budget, p.lineage))
        return sorted(plan, key=lambda p: _place(p).member)

    def _expected(self, generation: int) -> int:
        return self.size if generation == 0 else len(self.plans.get(generation, []))

    def ranked(self, results: Mapping[int, Outcome]) -> list[int]:
        """Members best first by what the study's scheduler judges (``prune_on``: the first objective, another
        one or a weighted sum); those breaking a constraint after every feasible one; failed, diverged and
        valueless ones last."""

        def score(m: int) -> tuple[int, float]:
            r = results[m]
            value = r.judged if r.judged is not None else r.value
            if r.state != TrialState.COMPLETED or value is None or not math.isfinite(value):
                return 2, 0.0
            return (1 if any(v > 0 for v in r.violations) else 0), self.mode.sign * value

        return sorted(results, key=score)

    def parent(self, member: int, generation: int) -> int | None:
        return self.numbers.get((member, generation))

    @abstractmethod
    def segment(self, member: int, generation: int, params: dict[str, Any], parent: int | None,
                event: str) -> Proposal:
        """The proposal of one trial: a member's configuration for one generation."""

    @abstractmethod
    def next_generation(self, generation: int, results: Mapping[int, Outcome]) -> list[Proposal]:
        """The trials of ``generation``, from the results of the one before."""


# -- synchronous successive halving --------------------------------------------------------
class SuccessiveHalving(Planner):
    """Synchronous successive halving: ``n`` configurations train ``min_resource`` epochs; the
    best ``1/reduction_factor`` continue, from their checkpoints, to ``reduction_factor`` times
    as many; and so on up to the budget. Unlike ``asha`` every rung waits for all its trials."""

    def __init__(self, mode: Direction | str = Direction.MIN, n: int | None = None, min_resource: int = 1,
                 reduction_factor: int = 3,
                 max_resource: int | None = None) -> None:
        super().__init__(mode)
        self.n = None if n is None else check_positive_int(n, "n", "sha")
        self.min_resource = check_positive_int(min_resource, "min_resource", "sha")
        self.eta = check_positive_int(reduction_factor, "reduction_factor", "sha")
        if self.eta < 2:
            raise fail("reduction_factor", "sha", "2 or more", reduction_factor)
        self.max_resource = max_resource

    def plan(self, searcher: Searcher, space: Space, budget: Mapping[str, Any], seed: int) -> Searcher:
        top = int(self.max_resource or _epochs(budget, "sha"))
        rungs = [self.min_resource]
        while rungs[-1] < top:
            rungs.append(min(top, rungs[-1] * self.eta))
        n = self.n or self.eta ** (len(rungs) - 1)
        return _Halving(searcher, n, self.mode, rungs, self.eta)


class _Halving(Generations):
    def __init__(self, inner: Searcher, n: int, mode: Direction, rungs: list[int], eta: int) -> None:
        super().__init__(inner, n, mode)
        self.rungs, self.eta = rungs, eta

    def segment(self, member: int, generation: int, params: dict[str, Any], parent: int | None,
                event: str) -> Proposal:
        budget = {"epochs": self.rungs[generation], "schedule_epochs": self.rungs[-1]}
        return Proposal(dict(params), None, parent, budget, Lineage(member, generation, event))

    def next_generation(self, generation: int, results: Mapping[int, Outcome]) -> list[Proposal]:
        if generation >= len(self.rungs):
            return []
        ranked = [m for m in self.ranked(results) if results[m].state == TrialState.COMPLETED]
        keep = ranked[:max(1, len(results) // self.eta)] if ranked else []
        return [self.segment(m, generation, self.params[(m, generation - 1)], self.parent(m, generation - 1),
                             "promote") for m in sorted(keep)]


# -- population based training ---------------------------------------------------------------
class PopulationBased(Planner):
    """Population Based Training: ``population`` members train ``interval`` epochs at a time;
    after each generation the bottom ``quantile`` copy a top member's checkpoint (exploit) and
    perturb its hyperparameters (explore: each numeric one times 0.8 or 1.2 within its bounds, or
    redrawn with ``resample_probability``; each Choice redrawn with that probability)."""

    def __init__(self, mode: Direction | str = Direction.MIN, population: int = 8, interval: int | None = None,
                 quantile: float = 0.25,
                 resample_probability: float = 0.25, factors: tuple[float, float] = (0.8, 1.2)) -> None:
        super().__init__(mode)
        self.population = check_positive_int(population, "population", "pbt")
        if population < 2:
            raise fail("population", "pbt", "2 or more members", population)
        self.interval = None if interval is None else check_positive_int(interval, "interval", "pbt")
        if not 0 < quantile <= 0.5:
            raise fail("quantile", "pbt", "in (0, 0.5]", quantile)
        self.quantile, self.resample_probability, self.factors = quantile, resample_probability, tuple(factors)

    def plan(self, searcher: Searcher, space: Space, budget: Mapping[str, Any], seed: int) -> Searcher:
        epochs = int(_epochs(budget, "pbt"))
        interval = self.interval or max(1, epochs // 8)
        return _Population(searcher, self.population, self.mode, space, interval, math.ceil(epochs / interval),
                           epochs, self.quantile, self.resample_probability, self.factors, seed)


class _Population(Generations):
    def __init__(self, inner: Searcher, size: int, mode: Direction, space: Space, interval: int, generations: int,
                 epochs: int, quantile: float, resample: float, factors: tuple[float, ...], seed: int) -> None:
        super().__init__(inner, size, mode)
        self.space, self.interval, self.generations, self.epochs = space, interval, generations, epochs
        self.quantile, self.resample, self.factors, self.seed = quantile, resample, factors, seed

    def segment(self, member: int, generation: int, params: dict[str, Any], parent: int | None,
                event: str) -> Proposal:
        budget = {"epochs": min(self.epochs, (generation + 1) * self.interval), "schedule_epochs": self.epochs}
        return Proposal(dict(params), None, parent, budget, Lineage(member, generation, event))

    def next_generation(self, generation: int, results: Mapping[int, Outcome]) -> list[Proposal]:
        if generation >= self.generations or not results:
            return []
        rng = random.Random(self.seed * 1_000_003 + generation)  # the same plan after a restart
        ranked = self.ranked(results)
        cut = max(1, int(len(ranked) * self.quantile))
        top, bottom = ranked[:cut], set(ranked[-cut:]) if len(ranked) > cut else set()
        plan = []
        for m in sorted(results):
            if m in bottom:
                donor = rng.choice(top)
                params = self.explore(self.params[(donor, generation - 1)], rng)
                plan.append(self.segment(m, generation, params, self.parent(donor, generation - 1), "exploit"))
            else:
                plan.append(self.segment(m, generation, self.params[(m, generation - 1)],
                                         self.parent(m, generation - 1), "continue"))
        return plan

    def explore(self, params: dict[str, Any], rng: random.Random) -> dict[str, Any]:
        """Perturb each active parameter; a Choice with children keeps its value (its children
        would have to change with it)."""
        out = dict(params)
        for name, p in self.space.active(params).items():
            if name not in out:
                continue
            if isinstance(p, Choice):
                if not p.children and rng.random() < self.resample:
                    out[name] = rng.choice(p.values)
                continue
            if rng.random() < self.resample:
                out[name] = _draw(p, rng)
                continue
            value = out[name] * rng.choice(self.factors)
            out[name] = _clip(p, value)
        return out


def _place(p: Proposal) -> Lineage:
    """A planned proposal's lineage (every proposal a plan makes has one)."""
    assert p.lineage is not None
    return p.lineage


def _draw(p: Any, rng: random.Random) -> Any:
    if isinstance(p, LogFloat) or (isinstance(p, Int) and p.log):
        value = math.exp(rng.uniform(math.log(p.low), math.log(p.high)))
    else:
        value = rng.uniform(p.low, p.high)
    return _clip(p, value)


def _clip(p: Any, value: float) -> Any:
    value = min(max(value, p.low), p.high)
    if isinstance(p, Int):
        return int(p.low + p.step * round((value - p.low) / p.step))
    if isinstance(p, Float) and p.step is not None:
        return float(p.low + p.step * round((value - p.low) / p.step))
    return float(value)


def _epochs(budget: Mapping[str, Any], name: str) -> int:
    if "epochs" not in budget:
        raise ConfigError(f"The {name!r} scheduler trains in segments of epochs: give the study a budget in epochs "
                          f"(budget={{'epochs': 30}}) and pass epochs=trial.budget.epochs to training.")
    return int(budget["epochs"])


@schedulers.register("sha", SuccessiveHalving)
def _make_sha(options: dict[str, Any], mode: Direction | str = Direction.MIN, **_: Any) -> SuccessiveHalving:
    """Synchronous successive halving (n, min_resource, reduction_factor, max_resource)."""
    return SuccessiveHalving(mode, **options)


@schedulers.register("pbt", PopulationBased)
def _make_pbt(options: dict[str, Any], mode: Direction | str = Direction.MIN, **_: Any) -> PopulationBased:
    """Population Based Training (population, interval, quantile, resample_probability, factors)."""
    return PopulationBased(mode, **options)
