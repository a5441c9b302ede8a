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
from tuneloop.search._base import Outcome, Proposal, Searcher, searchers
from tuneloop.space import Space
from tuneloop.store import TrialState

# how a finished trial reads to Optuna (interrupted and running ones are not told: their result comes later)
_STATES: dict[str, str] = {TrialState.COMPLETED: "COMPLETE", TrialState.PRUNED: "PRUNED", TrialState.FAILED: "FAIL",
           TrialState.DIVERGED: "FAIL"}


class OptunaSearcher(Searcher):
    """Adapter from any ``optuna.samplers.BaseSampler`` to the Searcher interface."""

    def __init__(self, space: Space, sampler: Any, mode: Direction | str = Direction.MIN) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.space = space
        self.sampler = sampler
        direction = Direction.of(mode, "OptunaSearcher")
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
        value = outcome.value if outcome.value is not None and math.isfinite(outcome.value) else None
        if state == OptunaState.COMPLETE and value is None:
            state = OptunaState.FAIL
        token = outcome.token
        if token is None:
            if not self._learns:
                return  # a sampler that never reads the history: replaying another driver's trial costs for nothing
            self._add(outcome, state, value)
            return
        for step, v in dict(outcome.curve).items():  # pruned trials are ranked by their last report
            if math.isfinite(v):
                token.report(v, step)
        if state == OptunaState.COMPLETE:
            self._study.tell(token, value)
        else:
            self._study.tell(token, state=state)

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
        value = prior.value if prior.value is not None and math.isfinite(prior.value) else None
        if prior.state == TrialState.COMPLETED and value is None:
            return False
        state = OptunaState.COMPLETE if prior.state == TrialState.COMPLETED else OptunaState.PRUNED
        self._add(prior, state, value, {"tuneloop_prior": prior.number if prior.number is not None else True})
        return True

    def _add(self, outcome: Outcome, state: Any, value: float | None, attrs: dict[str, Any] | None = None) -> None:
        """A finished trial the sampler did not propose (replayed from the store, or a prior)."""
        from optuna.trial import TrialState as OptunaState
        from optuna.trial import create_trial

        self._study.add_trial(create_trial(
            state=state,
            value=value if state == OptunaState.COMPLETE else None,
            params=outcome.params,
            distributions=self.space.distributions(outcome.params),
            intermediate_values={s: v for s, v in outcome.curve if math.isfinite(v)},
            user_attrs=attrs,
        ))


def _optuna_searcher(make_sampler: Callable[..., Any]) -> Callable[..., OptunaSearcher]:
    def factory(options: dict[str, Any], space: Space, seed: int | None = None, mode: Direction | str = Direction.MIN,
                **_: Any) -> OptunaSearcher:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ExperimentalWarning for some samplers
            sampler = make_sampler(seed=seed, space=space, **options)
        return OptunaSearcher(space, sampler, mode)

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


def _cmaes(seed: int | None, space: Space, **options: Any) -> Any:
    from optuna.samplers import CmaEsSampler

    return CmaEsSampler(seed=seed, **{"warn_independent_sampling": False, **options})


searchers.register("random", OptunaSearcher)(_optuna_searcher(_random))
searchers.register("sobol", OptunaSearcher)(_optuna_searcher(_sobol))
searchers.register("tpe", OptunaSearcher)(_optuna_searcher(_tpe))
searchers.register("gp", OptunaSearcher)(_optuna_searcher(_gp))
searchers.register("cmaes", OptunaSearcher)(_optuna_searcher(_cmaes))
