"""Minimally sufficient testing: layer checks, loss at init, input dependence, overfitting a
batch, a ladder of stages, and non-deep-learning baselines (imports torch)."""

from tuneloop.checks._baselines import baselines
from tuneloop.checks._result import CheckReport, CheckResult
from tuneloop.checks._run import Checks, check
from tuneloop.checks._training import Stage

__all__ = ["CheckReport", "CheckResult", "Checks", "Stage", "baselines", "check"]
