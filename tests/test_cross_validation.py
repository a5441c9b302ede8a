"""k-fold cross-validation as the objective: folds stratified, reported per fold, test untouched."""

import numpy as np
import pytest

import tuneloop as tl
from tuneloop.torch import MLP, fit


def blobs():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    x = (np.array([[3.0, 0.0], [-3.0, 0.0], [0.0, 3.0]])[y] + rng.normal(0, 0.7, (300, 2))).astype(np.float32)
    return {"train": (x[:150], y[:150]), "val": (x[150:210], y[150:210]), "test": (x[210:], y[210:])}


DATA = blobs()
SEEN = []


def train(trial):
    def one_fold(fit_on, heldout, t):
        SEEN.append((trial.phase, len(fit_on[1]), len(heldout[1]), np.bincount(heldout[1], minlength=3).tolist()))
        return fit(lambda: MLP(2, 3, width=8), fit_on, heldout, trial=t, lr=0.03, epochs=3, seed=trial.seed,
                   inspect_every=2, log_every=5).metrics

    return tl.cross_validate(trial, DATA, one_fold, k=3)


def test_folds_pool_train_and_val_and_the_mean_is_the_objective(storage):
    SEEN.clear()
    study = tl.Study("cv", tl.Space(x=tl.Choice([0])), train, metric="val_acc", mode="max", storage=storage, seed=0)  # a fixed seed: deterministic whatever ran before
    study.run(searcher="grid")
    (t,) = study.trials
    assert [s[1:3] for s in SEEN] == [(140, 70)] * 3  # 210 pooled examples, 3 folds, test never seen
    assert all(max(s[3]) - min(s[3]) <= 8 for s in SEEN)  # stratified: the classes share each fold
    folds = [t.values[f"val_acc_fold{i}"] for i in range(3)]
    assert t.value == pytest.approx(np.mean(folds)) and t.values["val_acc_sd"] == pytest.approx(np.std(folds, ddof=1))
    assert t.values["folds"] == 3 and t.value > 0.8
    curves = study.store(None).series([t.id])[t.id]
    assert [s for s, _ in curves["val_acc"]] == [1, 2, 3]  # the running mean after each fold
    assert curves["val_acc"][-1][1] == pytest.approx(t.value)
    assert [s for s, _ in curves["fold2/val_acc"]] == [1, 2, 3]  # each fold's epochs, as curves of their own
    names = {h.name for h in study.store(None).histograms(t.id)}
    assert any(n.startswith("fold0/weight/") for n in names) and any(n.startswith("fold2/") for n in names)
    SEEN.clear()
    result = study.finalize(top=1, seeds=1)
    assert SEEN == [("final", 150, 90, np.bincount(DATA["test"][1], minlength=3).tolist())]  # once, on test
    assert result.metric == "test_acc" and result.configs[0].values
    assert result.configs[0].epochs is None  # fold steps are not epochs: the final run trains the budget


def test_bad_folds_are_explained(storage):
    study = tl.Study("cv1", tl.Space(x=tl.Choice([0])), lambda t: tl.cross_validate(t, DATA, lambda a, b, c: {}, k=1),
                     metric="val_acc", mode="max", storage=storage)
    study.run(searcher="grid")
    assert "2 or more folds" in study.trials[0].error
