"""Ensembles of finalized (or top) trials: majority vote, probability averaging, stacking.

    result = study.ensemble()        # or: tuneloop ensemble mlp; tuneloop.finalize.ensemble(store, "mlp")

Members are the finalized configurations: for each seed, the K configurations' models trained
with that seed form one ensemble, compared with the best single configuration (ranked by its
tuning results, never by test) at the same seed. The gain's interval is a t interval over seeds
(paired by seed); with one seed it is a paired bootstrap over test examples. Stacking fits a
logistic regression (a linear one for regression) on the members' validation predictions when
they were trained on train alone, else it is cross-fitted on the test split (5 folds; each test
example is predicted by a stacker that did not see it). Without a finalize run the top trials
of the tuning study are used on validation predictions, with a warning: those figures are
optimistic, because validation also chose the members.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from tuneloop._logged import decode_predictions
from tuneloop.analysis import mean_ci
from tuneloop.errors import ConfigError, TuneloopError
from tuneloop.finalize._run import latest_final
from tuneloop.store import Store, StudyRecord, TrialRecord, TrialState

METHODS = ("vote", "average", "stack")
_BOOTSTRAP = 2000


@dataclass
class EnsembleRow:
    """One method's score (mean over seeds) and its gain over the best single model."""

    method: str
    score: float
    score_low: float
    score_high: float
    gain: float | None = None
    gain_low: float | None = None
    gain_high: float | None = None
    per_seed: list[float] = field(default_factory=list)
    note: str = ""


@dataclass
class EnsembleResult:
    study: str
    split: str  # where the scores are measured: "test" (finalized) or "val" (top tuning trials)
    metric: str  # "accuracy" or "mse"
    members: list[str]
    seeds: int
    interval: str  # how the gain's interval was computed
    rows: list[EnsembleRow]
    warning: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def ensemble(store: Store, name: str, methods: Sequence[str] = METHODS, top: int = 5) -> EnsembleResult:
    """Ensembles of study ``name``'s finalized configurations (its latest ``-final`` study, or
    ``name`` itself if it is one); without one, of its ``top`` tuning trials on validation."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ConfigError(f"Unknown ensemble method(s) {unknown}; choose from {', '.join(METHODS)}.")
    record = store.require_study(name)
    final = record if record.config.get("kind") == "final" else latest_final(store, name)
    if final is not None:
        groups, labels, split, warning = _final_members(store, final)
    else:
        groups, labels, split = _tuning_members(store, record, top)
        warning = (f"{name!r} has no finalize run, so these are the top {len(labels)} tuning trials scored on "
                   f"validation, which also chose them: the gains are optimistic. Run `tuneloop finalize {name}` "
                   f"for figures on the test split.")
    result = _score(groups, methods, split)
    objectives = record.objectives
    if objectives.multi:  # the members were chosen on a front; an ensemble's cost is not on one
        note = (f"{record.name!r} has several objectives ({', '.join(objectives.names)}): ensembles are scored on "
                f"{result.metric} alone, and an ensemble of {len(labels)} models costs about {len(labels)} times "
                f"one member's size, latency and training time.")
        warning = f"{warning} {note}" if warning else note
    result.study, result.members, result.warning = (final or record).name, labels, warning
    return result


def _predictions(store: Store, trial: TrialRecord, split: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The trial's saved (outputs, targets) on ``split``; the stored path is untrusted, so it is
    resolved inside the artifact folder (NotFound otherwise) and the file read without pickle."""
    for s in store.samples(trial.id, trial.attempt):
        if s.kind == "predictions" and s.name == f"predictions/{split}" and s.path:
            path = store.artifact_file(s.path)
            try:
                return decode_predictions(path)
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:  # missing, not npz, pickled
                raise ConfigError(f"Trial {trial.number}'s predictions file {path} cannot be read "
                                  f"({(str(e).splitlines() or [type(e).__name__])[0][:200]}); rerun "
                                  f"trial {trial.number} to save them again.") from None
    return None


_NO_PREDICTIONS = ("Trial {n} of {study!r} saved no predictions on {split}; ensembles need them. Train with "
                   "tuneloop.torch.fit (it saves them) or call trial.log_predictions(step, trial.heldout, "
                   "probabilities, labels) in the trial function, then rerun.")


def _final_members(store: Store, final: StudyRecord) -> tuple[list[dict[str, Any]], list[str], str, str | None]:
    """One group per seed index: each configuration's run with that seed, test and val outputs."""
    trials = [t for t in store.trials(final.id) if t.state == TrialState.COMPLETED]
    by_config: list[list[TrialRecord]] = []
    for c in final.config["configs"]:
        key = json.dumps(c["params"], sort_keys=True)
        by_config.append(sorted((t for t in trials if json.dumps(t.params, sort_keys=True) == key),
                                key=lambda t: t.number))
    n_seeds = min(len(runs) for runs in by_config)
    if len(by_config) < 2 or n_seeds == 0:
        raise TuneloopError(f"{final.name!r} needs at least 2 finalized configurations with a completed run each "
                            f"to build an ensemble; finalize with --top 3 or more.")
    groups = []
    for j in range(n_seeds):
        members = [runs[j] for runs in by_config]
        test = [_predictions(store, t, "test") for t in members]
        for t, p in zip(members, test, strict=True):
            if p is None:
                raise TuneloopError(_NO_PREDICTIONS.format(n=t.number, study=final.name, split="test"))
        val = [_predictions(store, t, "val") for t in members]
        groups.append({"test": test, "fit": None if any(v is None for v in val) else val})
    labels = [f"#{c['rank']} ({c.get('study', final.config['parent'])} trials {', '.join(map(str, c['source']))})"
              for c in final.config["configs"]]
    return groups, labels, "test", None


def _tuning_members(store: Store, record: StudyRecord, top: int) -> tuple[list[dict[str, Any]], list[str], str]:
    done = [t for t in store.trials(record.id, states=[TrialState.COMPLETED]) if t.value is not None]
    objectives = record.objectives  # by the primary objective, among the trials that keep the constraints
    members = record.mode.sorted([t for t in done if objectives.feasible(t.values)], key=lambda t: t.value)[:top]
    if len(members) < 2:
        raise TuneloopError(f"{record.name!r} needs at least 2 completed trials that keep its constraints to build "
                            f"an ensemble." if objectives.constraints else
                            f"{record.name!r} needs at least 2 completed trials to build an ensemble.")
    preds = [_predictions(store, t, "val") for t in members]
    for t, p in zip(members, preds, strict=True):
        if p is None:
            raise TuneloopError(_NO_PREDICTIONS.format(n=t.number, study=record.name, split="val"))
    return [{"test": preds, "fit": None}], [f"trial {t.number}" for t in members], "val"


def _score(groups: list[dict[str, Any]], methods: Sequence[str], split: str) -> EnsembleResult:
    """Score every method on every seed group; gains against member 0 (the best by tuning)."""
    outputs0, y = groups[0]["test"][0]
    classify = outputs0.ndim == 2 and outputs0.shape[1] > 1
    metric = "accuracy" if classify else "mse"
    if "vote" in methods and not classify:
        methods = [m for m in methods if m != "vote"]
    per_seed: dict[str, list[np.ndarray]] = {"best single": []}  # per-example scores, by method
    notes: dict[str, str] = {"best single": "rank 1 by tuning, same seed"}
    for g in groups:
        outs = [o for o, _ in g["test"]]
        targets = g["test"][0][1]
        per_seed["best single"].append(_per_example(outs[0], targets, classify))
        for m in methods:
            pred, note = _combine(m, outs, targets, g["fit"], classify)
            per_seed.setdefault(m, []).append(_per_example(pred, targets, classify))
            notes[m] = note
    n_seeds = len(groups)
    rows = []
    base = per_seed["best single"]
    for m, scores in per_seed.items():
        means = [float(s.mean()) for s in scores]
        ci = mean_ci(means)
        row = EnsembleRow(m, ci.mean, ci.low, ci.high, per_seed=means, note=notes[m])
        if m != "best single":
            sign = 1.0 if classify else -1.0  # a gain is "better": more accuracy, less error
            gains = [sign * (float(s.mean()) - float(b.mean())) for s, b in zip(scores, base, strict=True)]
            if n_seeds >= 2:
                g_ci = mean_ci(gains)
                row.gain, row.gain_low, row.gain_high = g_ci.mean, g_ci.low, g_ci.high
            else:
                row.gain, row.gain_low, row.gain_high = _bootstrap_gain(sign * (scores[0] - base[0]))
        rows.append(row)
    interval = (f"95% t interval over {n_seeds} seeds, paired by seed" if n_seeds >= 2
                else f"95% paired bootstrap over {len(y)} examples ({_BOOTSTRAP} resamples)")
    return EnsembleResult(study="", split=split, metric=metric, members=[], seeds=n_seeds, interval=interval, rows=rows)


def _per_example(pred: np.ndarray, y: np.ndarray, classify: bool) -> np.ndarray:
    if classify:
        return (pred.argmax(-1) == y).astype(np.float64)
    return ((pred.reshape(len(y)) - y) ** 2).astype(np.float64)


def _combine(method: str, outs: list[np.ndarray], y: np.ndarray, fit: list[tuple[np.ndarray, np.ndarray]] | None,
             classify: bool) -> tuple[np.ndarray, str]:
    """The ensemble's outputs (scores per class, or values) and how they were made."""
    if method == "average":
        return np.mean(outs, axis=0), "mean of the members' probabilities" if classify else "mean of outputs"
    if method == "vote":
        n_classes = outs[0].shape[1]
        votes = sum(np.eye(n_classes)[o.argmax(-1)] for o in outs)
        return votes + 1e-6 * np.mean(outs, axis=0), "majority of argmax votes (ties: mean probability)"
    features = np.concatenate([o.reshape(len(o), -1) for o in outs], axis=1)
    if fit is not None:
        fit_x = np.concatenate([o.reshape(len(o), -1) for o, _ in fit], axis=1)
        model = _stacker(classify).fit(fit_x, fit[0][1])
        kind = "logistic" if classify else "linear"
        return _stack_out(model, features, classify), f"{kind} regression on validation predictions"
    from sklearn.model_selection import KFold, StratifiedKFold

    folds = (StratifiedKFold if classify and np.bincount(y).min() >= 5 else KFold)(5, shuffle=True, random_state=0)
    out = np.zeros((len(y), outs[0].shape[1]) if classify else len(y))
    for train_idx, test_idx in folds.split(features, y):
        model = _stacker(classify).fit(features[train_idx], y[train_idx])
        out[test_idx] = _stack_out(model, features[test_idx], classify, outs[0].shape[1] if classify else 0)
    return out, "cross-fitted on the evaluation split (5 folds): no validation predictions to fit on"


def _stacker(classify: bool) -> Any:
    from sklearn.linear_model import LinearRegression, LogisticRegression

    return LogisticRegression(max_iter=2000) if classify else LinearRegression()


def _stack_out(model: Any, x: np.ndarray, classify: bool, n_classes: int = 0) -> np.ndarray:
    if not classify:
        return model.predict(x)
    proba = model.predict_proba(x)
    if n_classes and proba.shape[1] != n_classes:  # a fold that lacked a class: place columns by label
        full = np.zeros((len(x), n_classes))
        full[:, model.classes_] = proba
        return full
    return proba


def _bootstrap_gain(diff: np.ndarray) -> tuple[float, float, float]:
    """Mean per-example difference and its 95% percentile bootstrap interval."""
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(diff), size=(_BOOTSTRAP, len(diff)))
    means = diff[idx].mean(axis=1)
    return float(diff.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))
