"""The reference trainer: it learns, is deterministic, reports and inspects, flags divergence."""

import math

import numpy as np
import pytest
import torch

import tuneloop as tl
from tuneloop._logged import decode_predictions
from tuneloop.torch import MLP, fit, lr_factor, make_optimizer


@pytest.fixture(scope="module")
def blobs():
    """Three well-separated Gaussian blobs: any working trainer gets them right."""
    rng = np.random.default_rng(0)
    centers = np.array([[3.0, 0.0], [-3.0, 0.0], [0.0, 3.0]])
    y = rng.integers(0, 3, 300)
    x = (centers[y] + rng.normal(0, 0.5, (300, 2))).astype(np.float32)
    return (x[:200], y[:200]), (x[200:], y[200:])


def run_in_study(storage, blobs, **fit_kwargs):
    """Run ``fit`` as the trial function of a one-trial study; return (trial record, store)."""
    train, val = blobs

    def trial_fn(trial):
        return fit(lambda: MLP(2, 3, width=16), train, val, trial=trial, seed=trial.seed, **fit_kwargs).metrics

    study = tl.Study("fit", tl.Space(x=tl.Choice([0])), trial_fn, metric="val_acc", mode="max", storage=storage)
    study.run(searcher="grid")
    (t,) = study.trials
    return t, study.store(None)


def test_fit_learns_and_keeps_the_best_epoch(blobs):
    train, val = blobs
    result = fit(lambda: MLP(2, 3, width=16), train, val, optimizer="adam", lr=1e-2, epochs=15, seed=0)
    assert result.metrics["val_acc"] > 0.95
    accs = [h["val_acc"] for h in result.history]
    assert result.metrics["val_acc"] == max(accs) and result.best_epoch == accs.index(max(accs)) + 1
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_fit_is_deterministic_under_a_seed(blobs):
    train, val = blobs
    runs = [fit(lambda: MLP(2, 3), train, val, optimizer="sgd", momentum=0.5, lr=0.05, epochs=3, seed=s,
                cost_metrics=False).history for s in (4, 4, 5)]
    assert runs[0] == runs[1] != runs[2]


def test_a_dataloader_trains_like_arrays(blobs):
    (x, y), val = blobs
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.tensor(x), torch.tensor(y)),
                                         batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0))
    result = fit(lambda: MLP(2, 3, width=16), loader, val, lr=1e-2, epochs=10, seed=0)
    assert result.metrics["val_acc"] > 0.95


def test_every_epoch_is_reported_and_the_inspector_logs_its_numbers(blobs, storage):
    t, store = run_in_study(storage, blobs, lr=1e-2, epochs=3, batch_size=50, log_every=2, inspect_every=4)
    assert t.state == "completed"
    curves = store.series([t.id])[t.id]
    assert [s for s, _ in curves["val_acc"]] == [1, 2, 3]
    assert {"train_loss", "val_loss", "val_acc", "step/train_loss", "step/lr", "grad_norm"} <= set(curves)
    assert [s for s, _ in curves["step/train_loss"]] == [0, 2, 4, 6, 8, 10]  # 4 steps an epoch, log_every=2
    (ratio,) = curves["init_loss_ratio"]
    assert 0.5 < ratio[1] < 2.0  # an untrained 3-class classifier starts near ln(3)
    assert any(name.startswith("update_ratio/") for name in curves)
    assert any(name.startswith("dead_relu/") for name in curves)
    hists = store.histograms(t.id)
    assert {h.step for h in hists} == {0, 4, 8}
    names = {h.name for h in hists}
    assert {"weight/0.weight", "grad/0.weight", "act/0", "act/1"} <= names
    slices = store.slices(t.id)
    assert {s.slice for s in slices} == {"class 0", "class 1", "class 2"} and sum(s.n for s in slices) == 2 * 100
    confusion, predictions = store.samples(t.id)
    assert confusion.name == "confusion" and len(confusion.payload) == 3
    assert predictions.name == "predictions/val" and predictions.kind == "predictions"
    outputs, targets = decode_predictions(store.artifact_dir / predictions.path)
    assert outputs.shape == (100, 3) and np.allclose(outputs.sum(1), 1.0, atol=1e-5)  # probabilities
    assert np.array_equal(targets, blobs[1][1])
    assert (outputs.argmax(1) == targets).mean() == pytest.approx(t.values["val_acc"])  # the selected epoch's


def test_a_huge_learning_rate_alerts_non_finite_and_the_trial_is_diverged(blobs, storage):
    t, store = run_in_study(storage, blobs, optimizer="sgd", lr=1e12, epochs=4)
    assert t.state == "diverged"
    assert any(a.rule == "non-finite" and a.action == "stop" for a in store.alerts(t.id))


def test_steps_override_epochs_and_patience_stops_early(blobs):
    train, val = blobs
    r = fit(lambda: MLP(2, 3), train, val, steps=5, batch_size=100, epochs=99)  # 2 steps an epoch
    assert len(r.history) == 3
    flat = fit(lambda: MLP(2, 3), train, val, lr=0.0, optimizer="sgd", epochs=50, patience=3)
    assert flat.stopped_early and len(flat.history) == 4  # epoch 1 is best, 3 more without progress


@pytest.mark.parametrize("schedule", ["one_cycle", "plateau", "step", "warmup_cosine"])
def test_every_schedule_trains(schedule, blobs):
    train, val = blobs
    r = fit(lambda: MLP(2, 3, width=16), train, val, lr=1e-2, epochs=8, schedule=schedule, clip=1.0,
            label_smoothing=0.1, seed=0)
    assert r.metrics["val_acc"] > 0.9


def test_plateau_cuts_the_learning_rate_when_validation_stalls(blobs, storage):
    t, store = run_in_study(storage, blobs, optimizer="sgd", lr=1e-6, epochs=6, schedule="plateau", log_every=1)
    lrs = [v for _, v in store.series([t.id])[t.id]["step/lr"]]
    assert lrs[0] == pytest.approx(1e-6) and lrs[-1] == pytest.approx(1e-7)  # cut after 3 flat epochs


def test_mse_regression_selects_on_val_loss():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 3)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5], dtype=np.float32))[:, None]
    r = fit(lambda: torch.nn.Linear(3, 1), (x[:150], y[:150]), (x[150:], y[150:]), loss="mse", lr=0.05, epochs=30)
    losses = [h["val_loss"] for h in r.history]
    assert "val_acc" not in r.metrics and r.metrics["val_loss"] == min(losses) < losses[0] / 10


def test_lr_schedules():
    assert lr_factor("constant", 50, 100) == 1.0
    assert lr_factor("cosine", 0, 100) == 1.0 and lr_factor("cosine", 100, 100) == pytest.approx(0.0)
    assert lr_factor("cosine", 50, 100) == pytest.approx(0.5)
    assert lr_factor("step", 60, 100) == pytest.approx(0.1) and lr_factor("step", 80, 100) == pytest.approx(0.01)
    warm = [lr_factor("warmup_cosine", s, 100, warmup=0.1) for s in range(12)]
    assert warm[:10] == pytest.approx([(s + 1) / 10 for s in range(10)]) and warm[10] == pytest.approx(1.0)


@pytest.mark.parametrize("kwargs, message", [
    ({"schedule": "linear"}, "The 'schedule' argument of fit must be one of 'constant', 'cosine', 'one_cycle'"),
    ({"optimizer": "adagrad"}, "The 'optimizer' argument of fit must be one of 'adam'"),
    ({"loss": "hinge"}, "The 'loss' argument of fit must be 'cross_entropy' or 'mse'"),
])
def test_unknown_names_list_the_valid_ones(kwargs, message, blobs):
    with pytest.raises(tl.ConfigError, match=message):
        fit(lambda: MLP(2, 3), *blobs, epochs=1, **kwargs)


@pytest.mark.parametrize("name, cls", [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW),
                                       ("nesterov", torch.optim.SGD), ("rmsprop", torch.optim.RMSprop)])
def test_optimizers_by_name(name, cls):
    opt = make_optimizer(name, [torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    assert isinstance(opt, cls) and not math.isnan(opt.defaults["lr"])
    if name == "nesterov":
        assert opt.defaults["nesterov"] and opt.defaults["momentum"] == 0.9


def test_dead_fraction_counts_units_dead_for_the_whole_batch():
    from tuneloop.torch._inspect import dead_fraction

    out = torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0]])  # units 0 and 3 are dead
    assert dead_fraction(out) == 0.5
    fresh = torch.relu(torch.nn.Linear(8, 64)(torch.randn(256, 8)))
    assert (fresh == 0).float().mean() > 0.3 and dead_fraction(fresh) < 0.1  # inactive is not dead
    conv = torch.zeros(4, 3, 5)
    conv[:, 1, 2] = 1.0  # channel 1 fires somewhere
    assert dead_fraction(conv) == pytest.approx(2 / 3)


def test_a_promoted_trial_continues_training_from_its_checkpoint(blobs, storage):
    train, val = blobs

    def trial_fn(trial):
        return fit(lambda: MLP(2, 3, width=8), train, val, trial=trial, optimizer="sgd", lr=trial.params["lr"],
                   epochs=trial.budget.epochs, schedule="cosine", seed=trial.seed, inspect_every=0,
                   log_every=1).metrics

    study = tl.Study("sha-fit", tl.Space(lr=tl.Choice([0.001, 0.003, 0.01])), trial_fn, metric="val_acc", mode="max",
                     budget={"epochs": 6}, storage=storage, searcher="grid",
                     scheduler={"name": "sha", "min_resource": 2, "reduction_factor": 3})
    study.run()
    store = study.store(None)
    trials = {t.number: t for t in study.trials}
    (child,) = [t for t in trials.values() if t.number == 3]
    parent = next(t for t in trials.values() if t.number < 3 and t.params == child.params)
    curves = store.series([parent.id, child.id])
    assert [s for s, _ in curves[parent.id]["train_loss"]] == [1, 2]
    assert [s for s, _ in curves[child.id]["train_loss"]] == [3, 4, 5, 6]  # epochs 3-6, not 1-4 again
    first_child, last_parent = curves[child.id]["train_loss"][0][1], curves[parent.id]["train_loss"][-1][1]
    assert first_child < curves[parent.id]["train_loss"][0][1] and first_child <= last_parent * 1.05  # no restart
    lrs = [v for _, v in curves[child.id]["step/lr"]]
    assert lrs == sorted(lrs, reverse=True) and lrs[-1] < 0.01 * 0.1  # one cosine over 6 epochs, continued
    before, after = curves[parent.id]["train_time_s"][-1][1], curves[child.id]["train_time_s"][0][1]
    assert after == pytest.approx(before + curves[child.id]["epoch_time_s"][0][1])  # the checkpoint carries it
