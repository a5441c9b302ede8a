"""Schedulers: which running trials deserve more budget (none, median, asha, hyperband)."""

from tuneloop.schedule._base import Decision, Scheduler, schedulers
from tuneloop.schedule._none import NoScheduler
from tuneloop.schedule._optuna import OptunaPrunerScheduler

__all__ = ["Decision", "NoScheduler", "OptunaPrunerScheduler", "Scheduler", "schedulers"]
