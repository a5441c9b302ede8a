"""The reference trainer: it learns, is deterministic, reports every epoch, and flags divergence."""

import math

import numpy as np
import pytest
import torch

import tuneloop as tl
from tuneloop.torch import MLP, fit, lr_factor, make_optimizer


@pytest.fixture(scope="module")
def blobs():
    """Three well-separated Gaussian blobs: any working trainer gets them right."""
    rng = np.random.default_rng(0)
    centers = np.array([[3.0, 0.0], [-3.0, 0.0], [0.0, 3.0]])
    y = rng.integers(0, 3, 300)
    x = (centers[y] + rng.normal(0, 0.5, (300, 2))).astype(np.float32)
    return (x[:200], y[:200]), (x[200:], y[200:])


def test_fit_learns_and_keeps_the_best_epoch(blobs):
    train, val = blobs
    result = fit(lambda: MLP(2, 3, width=16), train, val, optimizer="adam", lr=1e-2, epochs=15, seed=0)
    assert result.metrics["val_acc"] > 0.95
    accs = [h["val_acc"] for h in result.history]
    assert result.metrics["val_acc"] == max(accs) and result.best_epoch == accs.index(max(accs)) + 1
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_fit_is_deterministic_under_a_seed(blobs):
    train, val = blobs
    a = fit(lambda: MLP(2, 3), train, val, optimizer="sgd", momentum=0.5, lr=0.05, epochs=3, seed=4)
    b = fit(lambda: MLP(2, 3), train, val, optimizer="sgd", momentum=0.5, lr=0.05, epochs=3, seed=4)
    c = fit(lambda: MLP(2, 3), train, val, optimizer="sgd", momentum=0.5, lr=0.05, epochs=3, seed=5)
    assert a.history == b.history != c.history


def test_fit_reports_each_epoch_and_a_huge_lr_diverges(blobs, storage):
    train, val = blobs

    def trial_fn(trial):
        return fit(lambda: MLP(2, 3), train, val, trial=trial, optimizer="sgd", lr=trial.params.lr,
                   epochs=4, seed=trial.seed).metrics

    space = tl.Space(lr=tl.Choice([0.05, 1e12]))
    study = tl.Study("fit", space, trial_fn, metric="val_acc", mode="max", storage=storage)
    study.run(searcher="grid")
    by_lr = {t.params["lr"]: t for t in study.trials}
    assert by_lr[0.05].state == "completed"
    assert by_lr[1e12].state == "diverged"
    store = study._store(None)
    curve = store.series([by_lr[0.05].id])[by_lr[0.05].id]
    assert [s for s, _ in curve["val_acc"]] == [1, 2, 3, 4] and set(curve) == {"train_loss", "val_loss", "val_acc"}


def test_lr_schedules():
    assert lr_factor("constant", 50, 100) == 1.0
    assert lr_factor("cosine", 0, 100) == 1.0 and lr_factor("cosine", 100, 100) == pytest.approx(0.0)
    assert lr_factor("cosine", 50, 100) == pytest.approx(0.5)
    assert lr_factor("step", 60, 100) == pytest.approx(0.1) and lr_factor("step", 80, 100) == pytest.approx(0.01)
    warm = [lr_factor("warmup_cosine", s, 100, warmup=0.1) for s in range(12)]
    assert warm[:10] == pytest.approx([(s + 1) / 10 for s in range(10)]) and warm[10] == pytest.approx(1.0)
    with pytest.raises(tl.ConfigError, match="The 'schedule' argument of fit must be one of"):
        lr_factor("linear", 0, 10)


@pytest.mark.parametrize("name, cls", [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW),
                                       ("nesterov", torch.optim.SGD), ("rmsprop", torch.optim.RMSprop)])
def test_optimizers_by_name(name, cls):
    opt = make_optimizer(name, [torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    assert isinstance(opt, cls)
    if name == "nesterov":
        assert opt.defaults["nesterov"] and opt.defaults["momentum"] == 0.9
    with pytest.raises(tl.ConfigError, match="The 'optimizer' argument of fit must be one of"):
        make_optimizer("adagrad", [torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    assert not math.isnan(opt.defaults["lr"])
