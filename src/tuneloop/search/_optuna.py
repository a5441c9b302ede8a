"""Searchers built on Optuna's samplers through its ask/tell interface.

Each searcher keeps an in-memory Optuna study: tuneloop's own store is the record, and on
resume the driver replays stored trials into it with ``tell`` (token None). That keeps the
sampler's cost at Optuna's in-memory figure instead of paying for a second database. Trials
still in flight are running trials of that study, which samplers already account for (TPE's
constant liar), so the searchers need no count of workers.
"""

from __future__ import annotations

import math
import secrets
import warnings
from collections.abc import Callable
from typing import Any

from tuneloop.direction import Direction
from tuneloop.errors import ConfigError
from tuneloop.objectives import Objectives
from tuneloop.search._base import Outcome, Proposal, Searcher, searchers
from tuneloop.space import Space
from tuneloop.store import TrialState

# how a finished trial reads to Optuna (interrupted and running ones are not told: their result comes later)
_STATES: dict[str, str] = {TrialState.COMPLETED: "COMPLETE", TrialState.PRUNED: "PRUNED", TrialState.FAILED: "FAIL",
           TrialState.DIVERGED: "FAIL"}


_SINGLE_ONLY = {"CmaEsSampler": "cmaes"}  # Optuna samplers that model one objective only
_WORST = 1e12  # a constraint whose metric is missing: violated by far (Optuna wants finite numbers)


class OptunaSearcher(Searcher):
    """Adapter from any ``optuna.samplers.BaseSampler`` to the Searcher interface.

    With several ``objectives`` the in-memory study has one direction each and the sampler is told
    every objective's value; with constraints, each finished trial carries its violations as Optuna's
    own per-trial constraints (``Trial.set_constraint``), which TPE, NSGA-II/III and GP model."""

    def __init__(self, space: Space, sampler: Any, mode: Direction | str = Direction.MIN,
                 objectives: Objectives | None = None) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.space = space
        self.sampler = sampler
        direction = Direction.of(mode, "OptunaSearcher")
        self.objectives = objectives if objectives is not None and objectives.multi else None
        self._constraints = [] if objectives is None else [c.metric for c in objectives.constraints]
        if self.objectives is not None:
            name = type(sampler).__name__
            if name in _SINGLE_ONLY:
                raise ConfigError(f"The {_SINGLE_ONLY[name]} searcher optimizes one objective; with several "
                                  f"({', '.join(self.objectives.names)}) use tpe, nsga2, nsga3, gp, random or sobol.")
            self._study = optuna.create_study(sampler=sampler, directions=[
                "maximize" if d is Direction.MAX else "minimize" for d in self.objectives.directions])
        else:
            self._study = optuna.create_study(
                sampler=sampler, direction="maximize" if direction is Direction.MAX else "minimize"
            )
        self._learns = not isinstance(sampler, optuna.samplers.RandomSampler)  # random draws ignore the history

    def ask(self, n: int = 1) -> list[Proposal]:
        proposals = []
        for _ in range(n):
            optuna_trial = self._study.ask()
            with warnings.catch_warnings():
                # samplers warn about experimental features and fallbacks; not actionable here
                warnings.simplefilter("ignore")
                params = self.space.suggest(optuna_trial)
            proposals.append(Proposal(params, optuna_trial))
        return proposals

    def ask_with(self, fixed: dict[str, Any]) -> Proposal | None:
        """Optuna's own ``enqueue_trial``: the sampler chooses the other parameters."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # enqueue_trial is experimental in some Optuna versions
            self._study.enqueue_trial(dict(fixed), skip_if_exists=False)
        return self.ask(1)[0]

    def tell(self, outcome: Outcome) -> None:
        from optuna.trial import TrialState as OptunaState

        state_name = _STATES.get(outcome.state)
        if state_name is None:
            return  # interrupted or running: its result comes later
        state = OptunaState[state_name]
        value = self._value(outcome)
        if state == OptunaState.COMPLETE and value is None:
            state = OptunaState.FAIL
        token = outcome.token
        if token is None:
            if not self._learns:
                return  # a sampler that never reads the history: replaying another driver's trial costs for nothing
            self._add(outcome, state, value)
            return
        if self.objectives is None:  # Optuna keeps no intermediate values with several objectives
            for step, v in dict(outcome.curve).items():  # pruned trials are ranked by their last report
                if math.isfinite(v):
                    token.report(v, step)
        for key, violation in self._violations(outcome).items():
            token.set_constraint(key, violation)
        if state == OptunaState.COMPLETE:
            self._study.tell(token, value)
        else:
            self._study.tell(token, state=state)

    def _violations(self, outcome: Outcome) -> dict[str, float]:
        """Each constraint's violation by its metric's name, for a trial with a result (Optuna wants
        finite numbers: a missing metric is violated by far)."""
        if not self._constraints or outcome.state not in (TrialState.COMPLETED, TrialState.PRUNED):
            return {}
        return {key: v if math.isfinite(v) else _WORST
                for key, v in zip(self._constraints, outcome.violations, strict=False)}

    def _value(self, outcome: Outcome) -> float | list[float] | None:
        """What Optuna is told: the objective, or every objective (None when one is missing)."""
        if self.objectives is not None:
            return None if outcome.values is None else list(outcome.values)
        return outcome.value if outcome.value is not None and math.isfinite(outcome.value) else None

    def reseed(self) -> bool:
        self.sampler.reseed_rng()
        if type(self.sampler).__name__ == "QMCSampler" and hasattr(self.sampler, "_seed"):
            # Optuna's QMC keeps its scramble on reseed (its processes share one sequence through their
            # storage); each tuneloop driver holds its own in-memory study, so it needs a scramble of its own
            self.sampler._seed = secrets.randbelow(2**31)
        return True

    def observe(self, prior: Outcome) -> bool:
        """An earlier study's completed or pruned trial, added to the Optuna study as a finished
        trial marked ``tuneloop_prior`` (the sampler models it; tuneloop never counts it)."""
        from optuna.trial import TrialState as OptunaState

        if prior.state not in (TrialState.COMPLETED, TrialState.PRUNED):
            return False
        value = self._value(prior)
        if prior.state == TrialState.COMPLETED and value is None:
            return False
        state = OptunaState.COMPLETE if prior.state == TrialState.COMPLETED else OptunaState.PRUNED
        self._add(prior, state, value, {"tuneloop_prior": prior.number if prior.number is not None else True})
        return True

    def _add(self, outcome: Outcome, state: Any, value: float | list[float] | None,
             attrs: dict[str, Any] | None = None) -> None:
        """A finished trial the sampler did not propose (replayed from the store, or a prior)."""
        from optuna.trial import TrialState as OptunaState
        from optuna.trial import create_trial

        done = state == OptunaState.COMPLETE
        # where Trial.set_constraint puts them (a trial added whole has no Trial to call it on)
        system = {f"constraints:{key}": v for key, v in self._violations(outcome).items()}
        self._study.add_trial(create_trial(
            state=state,
            value=value if done and not isinstance(value, list) else None,
            values=value if done and isinstance(value, list) else None,
            params=outcome.params,
            distributions=self.space.distributions(outcome.params),
            intermediate_values={} if self.objectives is not None else
            {s: v for s, v in outcome.curve if math.isfinite(v)},
            user_attrs=attrs,
            system_attrs=system or None,
        ))





def _optuna_searcher(make_sampler: Callable[..., Any]) -> Callable[..., OptunaSearcher]:
    """A registry factory for one sampler."""

    def factory(options: dict[str, Any], space: Space, seed: int | None = None, mode: Direction | str = Direction.MIN,
                objectives: Objectives | None = None, **_: Any) -> OptunaSearcher:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ExperimentalWarning for some samplers
            sampler = make_sampler(seed=seed, space=space, **options)
        return OptunaSearcher(space, sampler, mode, objectives)

    return factory


def _random(seed: int | None, space: Space, **options: Any) -> Any:
    from optuna.samplers import RandomSampler

    return RandomSampler(seed=seed, **options)


def _sobol(seed: int | None, space: Space, **options: Any) -> Any:
    from optuna.samplers import QMCSampler

    options = {"scramble": True, "warn_independent_sampling": False, "warn_asynchronous_seeding": False,
               **options}
    return QMCSampler(qmc_type="sobol", seed=seed, **options)


def _tpe(seed: int | None, space: Space, **options: Any) -> Any:
    from optuna.samplers import TPESampler

    # multivariate, and a constant liar for trials in flight (several run at once), written out rather
    # than taken from Optuna's defaults, which have changed between versions; on a conditional space,
    # ``group`` models each branch's parameters jointly instead of one by one (it needs multivariate)
    options = {"multivariate": True, "constant_liar": True, **options}
    if space.is_conditional and options["multivariate"]:
        options = {"group": True, **options}
    return TPESampler(seed=seed, **options)


def _gp(seed: int | None, space: Space, **options: Any) -> Any:
    from optuna.samplers import GPSampler

    return GPSampler(seed=seed, **{"warn_independent_sampling": False, **options})


def _nsga2(seed: int | None, space: Space, **options: Any) -> Any:
    from optuna.samplers import NSGAIISampler

    return NSGAIISampler(seed=seed, **options)


def _nsga3(seed: int | None, space: Space, **options: Any) -> Any:
    from optuna.samplers import NSGAIIISampler

    return NSGAIIISampler(seed=seed, **options)


def _cmaes(seed: int | None, space: Space, **options: Any) -> Any:
    from optuna.samplers import CmaEsSampler

    return CmaEsSampler(seed=seed, **{"warn_independent_sampling": False, **options})


searchers.register("random", OptunaSearcher)(_optuna_searcher(_random))
searchers.register("sobol", OptunaSearcher)(_optuna_searcher(_sobol))
searchers.register("tpe", OptunaSearcher)(_optuna_searcher(_tpe))
searchers.register("gp", OptunaSearcher)(_optuna_searcher(_gp))
searchers.register("nsga2", OptunaSearcher)(_optuna_searcher(_nsga2))
searchers.register("nsga3", OptunaSearcher)(_optuna_searcher(_nsga3))
searchers.register("cmaes", OptunaSearcher)(_optuna_searcher(_cmaes))
