"""PyTorch helpers: a reference trainer and small reference models. Imports torch."""

from tuneloop.torch._fit import OPTIMIZERS, SCHEDULES, FitResult, evaluate, fit, lr_factor, make_optimizer
from tuneloop.torch._models import CNN, MLP

__all__ = ["CNN", "FitResult", "MLP", "OPTIMIZERS", "SCHEDULES", "evaluate", "fit", "lr_factor", "make_optimizer"]
