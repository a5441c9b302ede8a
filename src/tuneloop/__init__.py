"""tuneloop: the deep-learning optimization loop, systematic and fast.

    import tuneloop as tl

    space = tl.Space(lr=tl.LogFloat(1e-4, 1e-1), width=tl.Int(32, 512, log=True))
    study = tl.Study("mlp", space, train, metric="val_acc", mode="max")
    study.run(n_trials=32, searcher="tpe", scheduler="asha", workers=2)
"""

from typing import TYPE_CHECKING

from tuneloop import trackers  # tl.trackers.TensorBoard(...) with no second import; no library is imported yet
from tuneloop.alerts import Rule, default_rules
from tuneloop.callbacks import Callback
from tuneloop.cross_validation import cross_validate
from tuneloop.direction import Direction
from tuneloop.errors import (
    ConfigError,
    NotFound,
    NotTuneloopDatabase,
    SchemaVersionError,
    StorageError,
    TrialFailed,
    TrialPruned,
    TuneloopError,
)
from tuneloop.experiment import load_study
from tuneloop.reporting import Reporter, reporting
from tuneloop.run import RunSummary
from tuneloop.space import Choice, Float, Int, LogFloat, Param, Space
from tuneloop.store import StudyRecord, TrialRecord, TrialState
from tuneloop.trial import Budget, Params, Trial

if TYPE_CHECKING:
    from tuneloop.store import Store
    from tuneloop.study import Study

__version__ = "0.1.0"

_LAZY = {"Checks": "tuneloop.checks", "Stage": "tuneloop.checks", "check": "tuneloop.checks",
         "Study": "tuneloop.study", "Store": "tuneloop.store"}


def __getattr__(name: str) -> object:
    """``tl.Checks``, ``tl.Stage`` and ``tl.check`` import torch, so they load on first use; so do
    ``tl.Study``, so that a worker process, which only runs trials, never imports ``tuneloop.study``,
    and ``tl.Store``, so that it never imports SQLAlchemy either."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tuneloop' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})

__all__ = [
    "Budget",
    "Callback",
    "Checks",
    "Choice",
    "ConfigError",
    "Direction",
    "Float",
    "Int",
    "LogFloat",
    "NotFound",
    "NotTuneloopDatabase",
    "Param",
    "Params",
    "Reporter",
    "Rule",
    "RunSummary",
    "SchemaVersionError",
    "Space",
    "Stage",
    "StorageError",
    "Store",
    "Study",
    "StudyRecord",
    "Trial",
    "TrialFailed",
    "TrialPruned",
    "TrialRecord",
    "TrialState",
    "TuneloopError",
    "check",
    "cross_validate",
    "default_rules",
    "load_study",
    "reporting",
    "trackers",
]
