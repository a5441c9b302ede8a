"""Schedulers: which running trials deserve more budget (none, median, asha, hyperband, forecast), and the
planners that continue trials from checkpoints (sha, pbt)."""

from tuneloop.schedule._base import Decision, PerValue, Scheduler, schedulers
from tuneloop.schedule._forecast import ForecastScheduler
from tuneloop.schedule._none import NoScheduler
from tuneloop.schedule._optuna import OptunaPrunerScheduler
from tuneloop.schedule._planner import Planner, PopulationBased, SuccessiveHalving

__all__ = ["Decision", "ForecastScheduler", "NoScheduler", "OptunaPrunerScheduler", "PerValue", "Planner", "PopulationBased", "Scheduler",
           "SuccessiveHalving", "schedulers"]
