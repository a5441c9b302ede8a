"""k-fold cross-validation as a trial's objective, for data too small for one validation split.

    def train(trial):
        return tl.cross_validate(trial, mnist1d(), lambda fit_on, heldout, t: fit(
            build, fit_on, heldout, trial=t, epochs=trial.budget.epochs, seed=trial.seed).metrics, k=5)

While tuning, train and validation are pooled and split into ``k`` stratified folds; ``fn`` trains
on k-1 and evaluates on the held-out one, once per fold, with a fold-scoped trial handle: its
epoch reports are logged as ``fold<i>/<metric>`` (curves, not scheduler steps). After each fold
the mean so far is reported at step i+1, so median/asha can stop a hopeless configuration after a
fold or two. The objective is the mean over folds, with its standard deviation and every fold's
value beside it. In a final run (``tuneloop finalize``) there are no folds: ``fn`` runs once on
``trial.splits(data)``, measured on the test split.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from typing import Any

from tuneloop._splits import concat, three_splits
from tuneloop._validation import check_positive_int, fail
from tuneloop.trial import Trial

FoldFunction = Callable[[Any, Any, Any], dict[str, float]]


def cross_validate(trial: Trial, data: Any, fn: FoldFunction, k: int = 5, *, seed: int | None = None) -> dict[str, float]:
    """Run ``fn(fit_on, heldout, fold_trial)`` on each of ``k`` folds; return the mean metrics
    (``<metric>``), their spread (``<metric>_sd``) and each fold's value (``<metric>_fold<i>``)."""
    check_positive_int(k, "k", "cross_validate")
    if k < 2:
        raise fail("k", "cross_validate", "2 or more folds", k)
    if trial.phase == "final":
        fit_on, heldout = trial.splits(data)
        return fn(fit_on, heldout, trial)
    import numpy as np
    from sklearn.model_selection import KFold, StratifiedKFold

    train, val, _ = three_splits(data)
    if not isinstance(train, tuple):
        raise fail("data", "cross_validate", "splits whose parts are (x, y) arrays or tensors, to cut into folds",
                   f"parts of type {type(train).__name__}")
    x, y = concat(train, val)
    labels = np.asarray(y.cpu() if hasattr(y, "cpu") else y)
    stratify = labels.dtype.kind in "iub" and np.bincount(labels.astype(int)).min() >= k
    folds = (StratifiedKFold if stratify else KFold)(k, shuffle=True, random_state=trial.seed if seed is None else seed)
    per_fold: list[dict[str, float]] = []
    objective = None
    for i, (fit_idx, held_idx) in enumerate(folds.split(np.zeros(len(labels)), labels if stratify else None)):
        result = fn((_take(x, fit_idx), _take(y, fit_idx)), (_take(x, held_idx), _take(y, held_idx)),
                    _FoldTrial(trial, i))
        per_fold.append({name: float(v) for name, v in result.items()})
        objective = objective or _objective(per_fold[-1])
        if objective is not None:
            running = statistics.fmean(f[objective] for f in per_fold if objective in f)
            trial.report(i + 1, **{objective: running})
            if trial.should_stop():
                break
    return _summary(per_fold)


def _objective(metrics: dict[str, float]) -> str | None:
    for name in ("val_acc", "val_loss"):
        if name in metrics:
            return name
    return next(iter(metrics), None)


def _summary(per_fold: list[dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in per_fold[0]:
        values = [f[name] for f in per_fold if name in f and math.isfinite(f[name])]
        if not values:
            out[name] = math.nan
            continue
        out[name] = statistics.fmean(values)
        out[f"{name}_sd"] = statistics.stdev(values) if len(values) > 1 else 0.0
        for i, f in enumerate(per_fold):
            if name in f:
                out[f"{name}_fold{i}"] = f[name]
    out["folds"] = float(len(per_fold))
    return out


def _take(a: Any, idx: Any) -> Any:
    if type(a).__module__.startswith("torch"):
        import torch

        return a[torch.as_tensor(idx)]
    return a[idx]


class _FoldTrial:
    """The trial as one fold sees it: epoch reports become ``fold<i>/...`` logs (the scheduler
    judges folds, not epochs), no checkpoints, no predictions; everything else is the trial's."""

    def __init__(self, trial: Trial, fold: int) -> None:
        self._trial, self._fold = trial, fold
        self.splits_used = True
        self.checkpointing = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._trial, name)

    @property
    def heldout(self) -> str:
        return "val"

    def report(self, step: int, **metrics: Any) -> None:
        self._trial.log(step, **{f"fold{self._fold}/{k}": v for k, v in metrics.items()})

    def log(self, step: int, **values: Any) -> None:
        self._trial.log(step, **{f"fold{self._fold}/{k}": v for k, v in values.items()})

    def log_histogram(self, step: int, name: str, values: Any, **kwargs: Any) -> None:
        self._trial.log_histogram(step, f"fold{self._fold}/{name}", values, **kwargs)

    def log_slice(self, step: int, slice: str, metric: str, value: Any, n: int) -> None:
        self._trial.log_slice(step, slice, f"fold{self._fold}/{metric}", value, n)

    def log_sample(self, step: int, name: str, value: Any, **kwargs: Any) -> None:
        self._trial.log_sample(step, f"fold{self._fold}/{name}", value, **kwargs)

    def log_predictions(self, *args: Any, **kwargs: Any) -> None:
        return None  # fold models are not ensemble members

    def load_checkpoint(self) -> None:
        return None

    def extra_heldout(self) -> None:
        return None
