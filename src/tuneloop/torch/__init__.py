"""PyTorch helpers: the reference trainer, its inspector, per-slice evaluation, small models.
Importing this imports torch."""

from tuneloop.torch._fit import LOSSES, OPTIMIZERS, SCHEDULES, FitResult, evaluate, fit, lr_factor, make_optimizer
from tuneloop.torch._inspect import Inspector
from tuneloop.torch._models import CNN, GRU, MLP
from tuneloop.torch._population import Population, fit_population
from tuneloop.torch._slices import evaluate_slices, log_slices

__all__ = [
    "CNN",
    "FitResult",
    "GRU",
    "Inspector",
    "LOSSES",
    "MLP",
    "OPTIMIZERS",
    "Population",
    "SCHEDULES",
    "evaluate",
    "evaluate_slices",
    "fit",
    "fit_population",
    "log_slices",
    "lr_factor",
    "make_optimizer",
]
