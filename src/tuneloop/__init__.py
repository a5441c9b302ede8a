"""tuneloop: the deep-learning optimization loop, systematic and fast.

    import tuneloop as tl

    space = tl.Space(lr=tl.LogFloat(1e-4, 1e-1), width=tl.Int(32, 512, log=True))
    study = tl.Study("mlp", space, train, metric="val_acc", mode="max")
    study.run(n_trials=32, searcher="tpe", scheduler="asha", workers=2)
"""

from tuneloop.alerts import Rule, default_rules
from tuneloop.callbacks import Callback
from tuneloop.errors import (
    ConfigError,
    SchemaVersionError,
    StorageError,
    TrialFailed,
    TrialPruned,
    TuneloopError,
)
from tuneloop.experiment import load_study
from tuneloop.run import RunSummary
from tuneloop.space import Choice, Float, Int, LogFloat, Param, Space
from tuneloop.store import Store, StudyRecord, TrialRecord, TrialState
from tuneloop.study import Study
from tuneloop.trial import Budget, Params, Trial

__version__ = "0.1.0"

__all__ = [
    "Budget",
    "Callback",
    "Choice",
    "ConfigError",
    "Float",
    "Int",
    "LogFloat",
    "Param",
    "Params",
    "Rule",
    "RunSummary",
    "SchemaVersionError",
    "Space",
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
    "default_rules",
    "load_study",
]
