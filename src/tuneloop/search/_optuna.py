"""Searchers built on Optuna's samplers through its ask/tell interface.

Each searcher keeps an in-memory Optuna study: tuneloop's own store is the record, and on
resume the driver replays stored trials into it with ``tell`` (token None). That keeps the
sampler's cost at Optuna's in-memory figure instead of paying for a second database. Trials
still in flight are running trials of that study, which samplers already account for (TPE's
constant liar), so the searchers need no count of workers.
"""

from __future__ import annotations

import math
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

    def tell(self, outcome: Outcome) -> None:
        from optuna.trial import TrialState as OptunaState
        from optuna.trial import create_trial

        state_name = _STATES.get(outcome.state)
        if state_name is None:
            return  # interrupted or running: its result comes later
        state = OptunaState[state_name]
        value = outcome.value if outcome.value is not None and math.isfinite(outcome.value) else None
        if state == OptunaState.COMPLETE and value is None:
            state = OptunaState.FAIL
        token = outcome.token
        if token is None:
            self._study.add_trial(create_trial(
                state=state,
                value=value if state == OptunaState.COMPLETE else None,
                params=outcome.params,
                distributions=self.space.distributions(outcome.params),
                intermediate_values={s: v for s, v in outcome.curve if math.isfinite(v)},
            ))
            return
        for step, v in dict(outcome.curve).items():  # pruned trials are ranked by their last report
            if math.isfinite(v):
                token.report(v, step)
        if state == OptunaState.COMPLETE:
            self._study.tell(token, value)
        else:
            self._study.tell(token, state=state)


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
