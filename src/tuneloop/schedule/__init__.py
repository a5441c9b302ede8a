"""Schedulers: which running trials deserve more budget (none, median, asha, hyperband)."""

from tuneloop.schedule._base import Decision, PerValue, Scheduler, schedulers
from tuneloop.schedule._none import NoScheduler
from tuneloop.schedule._optuna import OptunaPrunerScheduler

__all__ = ["Decision", "NoScheduler", "PerValue", "OptunaPrunerScheduler", "Scheduler", "schedulers"]
