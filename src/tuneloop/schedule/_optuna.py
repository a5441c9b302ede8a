"""Schedulers built on Optuna's pruners: ``median`` and ``asha``.

Each keeps a private in-memory Optuna study that mirrors the trials' reports (ask, report,
should_prune, tell: Optuna's public ask/tell API), so the pruning rules are Optuna's own and
any searcher, grid included, can be combined with any scheduler.
"""

from __future__ import annotations

import math
from typing import Any

from tuneloop.direction import Direction
from tuneloop.schedule._base import Decision, Scheduler, schedulers
from tuneloop.store import TrialState


class OptunaPrunerScheduler(Scheduler):
    """Adapter from any ``optuna.pruners.BasePruner`` to the Scheduler interface."""

    def __init__(self, pruner: Any, mode: Direction | str = Direction.MIN) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.pruner = pruner
        direction = Direction.of(mode, "OptunaPrunerScheduler")
        self._study = optuna.create_study(
            pruner=pruner, direction="maximize" if direction is Direction.MAX else "minimize"
        )
        self._trials: dict[int, Any] = {}
        self._steps: dict[int, set[int]] = {}

    def on_report(self, trial_id: int, step: int, value: float) -> Decision:
        if trial_id not in self._trials:
            self._trials[trial_id] = self._study.ask()
            self._steps[trial_id] = set()
        if step in self._steps[trial_id] or not math.isfinite(value):
            return Decision.CONTINUE  # a repeated step is ignored; divergence is the driver's call
        self._steps[trial_id].add(step)
        optuna_trial = self._trials[trial_id]
        optuna_trial.report(value, step)
        return Decision.STOP if optuna_trial.should_prune() else Decision.CONTINUE

    def on_result(self, trial_id: int, state: str, value: float | None) -> None:
        from optuna.trial import TrialState as OptunaState

        optuna_trial = self._trials.pop(trial_id, None)
        self._steps.pop(trial_id, None)
        if optuna_trial is None:
            return
        if state == TrialState.COMPLETED and value is not None and math.isfinite(value):
            self._study.tell(optuna_trial, value)
        elif state == TrialState.PRUNED:
            self._study.tell(optuna_trial, state=OptunaState.PRUNED)
        else:
            self._study.tell(optuna_trial, state=OptunaState.FAIL)


@schedulers.register("median", OptunaPrunerScheduler)
def _make_median(options: dict[str, Any], mode: Direction | str = Direction.MIN, **_: Any) -> OptunaPrunerScheduler:
    """Stop a trial whose best value so far is worse than the median of other trials at the
    same step (after ``n_startup_trials`` trials have completed and ``n_warmup_steps``)."""
    from optuna.pruners import MedianPruner

    return OptunaPrunerScheduler(MedianPruner(**options), mode)


@schedulers.register("asha", OptunaPrunerScheduler)
def _make_asha(options: dict[str, Any], mode: Direction | str = Direction.MIN, **_: Any) -> OptunaPrunerScheduler:
    """Asynchronous successive halving: at steps min_resource * reduction_factor**k, only the top
    1/reduction_factor of the trials that reached that rung go on."""
    from optuna.pruners import SuccessiveHalvingPruner

    options = {"min_resource": 1, "reduction_factor": 3, **options}
    return OptunaPrunerScheduler(SuccessiveHalvingPruner(**options), mode)


@schedulers.register("hyperband", OptunaPrunerScheduler)
def _make_hyperband(options: dict[str, Any], mode: Direction | str = Direction.MIN, **_: Any) -> OptunaPrunerScheduler:
    """Hyperband: several successive-halving brackets with different first rungs, so that
    aggressive and patient stopping are both tried (each trial falls in one bracket).
    ``max_resource`` is the last step a trial reports (e.g. the epochs); "auto" learns it from
    the first completed trial."""
    from optuna.pruners import HyperbandPruner

    options = {"min_resource": 1, "max_resource": "auto", "reduction_factor": 3, **options}
    return OptunaPrunerScheduler(HyperbandPruner(**options), mode)
