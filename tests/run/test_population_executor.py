"""The population executor through the real driver and a real SQLite store: members are ordinary
trials (rows, reports, slices, predictions), schedulers stop members, failures stay per trial."""

import threading

import numpy as np
import pytest
import torch
from torch import nn

import tuneloop as tl
from tuneloop.errors import ConfigError
from tuneloop.store import Store
from tuneloop.torch import MLP, fit

SPACE = tl.Space(lr=tl.LogFloat(1e-3, 3e-2), dropout=tl.Float(0.0, 0.3))


def _data():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 300)
    x = (np.eye(3)[y] * 2 + rng.normal(0, 1.0, (300, 3))).astype(np.float32)
    return (x[:200], y[:200]), (x[200:], y[200:])


TRAIN, VAL = _data()


def train_mlp(trial):
    p = trial.params
    return fit(lambda: MLP(3, 3, width=16, dropout=p.dropout), TRAIN, VAL, trial=trial, lr=p.lr,
               epochs=trial.budget.epochs, batch_size=50, seed=trial.seed, inspect_every=0).metrics


def study_of(fn, storage, name="pop"):
    return tl.Study(name, SPACE, fn, metric="val_acc", mode="max", budget=tl.Budget(epochs=4), storage=storage,
                    seed=0)


def test_members_are_ordinary_trials_in_the_store(storage):
    study = study_of(train_mlp, storage)
    summary = study.run(6, searcher="random", executor="population", members=4)
    assert summary.outcomes == {"completed": 6}
    store = Store(storage)
    record = store.get_study("pop")
    trials = store.trials(record.id)
    assert [t.number for t in trials] == list(range(6)) and all(t.value is not None for t in trials)
    series = store.series([t.id for t in trials], names=["val_acc", "population/members"])
    for t in trials:
        assert [s for s, _ in series[t.id]["val_acc"]] == [1, 2, 3, 4]
        assert series[t.id]["population/members"][0][1] in (4.0, 2.0)  # a batch of 4, then of 2
        assert {s.name for s in store.samples(t.id)} >= {"confusion", "predictions/val"}
        assert {s.slice for s in store.slices(t.id)} == {"class 0", "class 1", "class 2"}


def test_the_same_results_as_the_inline_executor(tmp_path):
    values = {}
    for executor in ("inline", "population"):
        study = study_of(train_mlp, f"sqlite:///{tmp_path / (executor + '.db')}")
        study.run(4, searcher="random", executor=executor if executor == "inline" else {"name": "population",
                                                                                      "exact": True})
        values[executor] = [(t.params["lr"], t.value, t.values["train_loss"]) for t in study.trials]
    for a, b in zip(values["inline"], values["population"]):
        assert a[0] == b[0] and a[1] == b[1] and a[2] == pytest.approx(b[2], rel=1e-4)


def test_asha_stops_members(storage):
    study = study_of(train_mlp, storage)
    summary = study.run(8, searcher="random", scheduler="asha", executor="population", members=8)
    assert summary.outcomes.get("pruned", 0) >= 1 and sum(summary.outcomes.values()) == 8
    store = Store(storage)
    trials = store.trials(store.get_study("pop").id)
    series = store.series([t.id for t in trials], names=["val_acc"])
    pruned = [t for t in trials if t.state == "pruned"]
    assert all(len(series[t.id]["val_acc"]) < 4 for t in pruned)


def fails_or_trains(trial):
    if trial.params.lr > 1e-2:
        raise ValueError(f"lr too high: {trial.params.lr}")
    return train_mlp(trial)


def no_fit(trial):
    for step in range(3):
        trial.report(step, val_acc=trial.params.dropout * step)
    return {"val_acc": trial.params.dropout}


def twice(trial):
    """Two fit calls per trial (as in cross-validation): two populations, one after the other."""
    first = train_mlp(trial)["val_acc"]
    second = fit(lambda: MLP(3, 3, width=8), TRAIN, VAL, lr=trial.params.lr, epochs=2, batch_size=50,
                 seed=trial.seed + 1, inspect_every=0, predictions=False).metrics["val_acc"]
    return {"val_acc": (first + second) / 2}


def batchnorm(trial):
    return fit(lambda: nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)), TRAIN, VAL,
               trial=trial, epochs=2, batch_size=50, seed=trial.seed).metrics


def test_a_failing_trial_fails_alone_with_its_error(storage):
    study = study_of(fails_or_trains, storage)
    study.run(6, searcher="random", executor="population", members=6)
    states = {t.state for t in study.trials}
    assert states == {"failed", "completed"}
    for t in study.trials:
        if t.state == "failed":
            assert t.error.startswith("ValueError: lr too high")


@pytest.mark.parametrize("fn", [no_fit, twice], ids=["without-fit", "fit-twice"])
def test_any_trial_function_runs(storage, fn):
    study = study_of(fn, storage)
    summary = study.run(3, searcher="random", executor="population", members=3)
    assert summary.outcomes == {"completed": 3}


def test_an_unsupported_model_fails_its_trials_with_the_fix(storage):
    study = study_of(batchnorm, storage)
    summary = study.run(2, searcher="random", executor="population")
    assert summary.outcomes == {"failed": 2}
    error = study.trials[0].error.splitlines()[0]
    assert "BatchNorm1d" in error and "executor='processes'" in error


def test_sys_exit_in_a_trial_fails_that_trial_only(storage):
    import trial_functions as tf

    study = tl.Study("exits", tl.Space(x=tl.Float(-2.0, 2.0)), tf.exits, metric="loss", mode="min", storage=storage,
                     seed=0)
    study.run(6, searcher="random", executor="population")
    for t in study.trials:
        assert (t.state == "failed") == (t.params["x"] < 0)
        if t.state == "failed":
            assert t.error.startswith("SystemExit: the trial function called sys.exit(3)")


def test_members_needs_the_population_executor(storage):
    with pytest.raises(ConfigError, match="population"):
        study_of(train_mlp, storage).run(2, members=4)
    with pytest.raises(ConfigError, match="exact takes True or False"):
        study_of(train_mlp, storage).run(2, executor={"name": "population", "exact": "yes"})


def test_cli_runs_a_population(tmp_path, monkeypatch, write_experiment):
    from typer.testing import CliRunner

    from tuneloop.cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TUNELOOP_STORAGE", raising=False)
    exp = write_experiment("""
        import tuneloop as tl
        from tuneloop.torch import MLP, fit
        import numpy as np
        rng = np.random.default_rng(0)
        x = rng.normal(size=(120, 4)).astype("float32"); y = (x[:, 0] > 0).astype("int64")

        def train(trial):
            return fit(lambda: MLP(4, 2, width=8), (x[:80], y[:80]), (x[80:], y[80:]), trial=trial,
                       lr=trial.params.lr, epochs=2, batch_size=20, seed=trial.seed, inspect_every=0).metrics

        study = tl.Study("clipop", tl.Space(lr=tl.LogFloat(1e-3, 1e-1)), train, metric="val_acc", mode="max")
    """)
    result = CliRunner().invoke(app, ["run", str(exp), "--trials", "5", "--executor", "population", "--members", "3"])
    assert result.exit_code == 0, result.output
    assert "Ran 5 trials" in result.output and "5 completed" in result.output
    assert torch.get_default_dtype() == torch.float32


class _Enough(Exception):
    """A callback's own exception: it ends the run, under this executor as under any other."""


class _StopAtFirstReport(tl.Callback):
    def on_report(self, number, step, metrics):
        raise _Enough(f"trial {number} reported")


def test_a_callbacks_exception_ends_the_run_and_fails_no_member(storage):
    """Reports reach the driver from inside the engine; a callback's error there is the run's error
    (as under the processes executor, where callbacks run in the driver), not a training error of
    every member of that population."""
    study = study_of(train_mlp, storage)
    with pytest.raises(_Enough, match="reported"):
        study.run(4, searcher="random", executor="population", members=4, callbacks=[_StopAtFirstReport()])
    trials = study.trials
    assert trials and all(t.state != tl.TrialState.FAILED for t in trials), [(t.state, t.error) for t in trials]


# -- the rolling population: freed slots take new trials at the next epoch boundary ------------------

ROLLING = tl.Space(lr=tl.LogFloat(1e-3, 3e-2), epochs=tl.Int(1, 4))


def train_for_epochs(trial):
    """Members of one population that end at different epochs: slots free while the others train."""
    p = trial.params
    return fit(lambda: MLP(3, 3, width=16), TRAIN, VAL, trial=trial, lr=p.lr, epochs=p.epochs, batch_size=50,
               seed=trial.seed, inspect_every=0, predictions=False).metrics


class _Order(tl.Callback):
    def __init__(self):
        self.reports = []

    def on_report(self, number, step, metrics):
        self.reports.append((number, step))


def _rolling(storage, executor, trials=8, fn=train_for_epochs, space=ROLLING, searcher="random", **options):
    order = _Order()
    study = tl.Study("roll", space, fn, metric="val_acc", mode="max", budget=tl.Budget(epochs=4), storage=storage,
                     seed=3)
    summary = study.run(trials, searcher=searcher, executor=executor, callbacks=[order], **options)
    return study, summary, order.reports


def test_new_trials_join_a_running_population_in_freed_slots(storage):
    """Trial 0 trains 1 epoch, trial 1 four: trial 2 takes trial 0's slot after epoch 1 and trains while
    trial 1 still does (a batch executor would start it only after trial 1's last epoch)."""
    from tuneloop.search import Listed

    configs = [{"lr": 1e-2, "epochs": e} for e in (1, 4, 1, 2)]
    study, summary, reports = _rolling(storage, "population", trials=4, members=2, searcher=Listed(configs))
    assert summary.outcomes == {"completed": 4}
    assert reports.index((2, 1)) < reports.index((1, 4)), reports
    assert reports.index((3, 1)) < reports.index((1, 4)), reports
    assert not [t for t in threading.enumerate() if t.name == "tuneloop-population"]  # the trainer has ended


def test_joiners_train_as_they_would_alone(tmp_path):
    """exact=True: a trial that joined a running population equals its inline run."""
    values = {}
    for executor in ("inline", "population"):
        how = executor if executor == "inline" else {"name": "population", "exact": True, "members": 3}
        study, _, _ = _rolling(f"sqlite:///{tmp_path / (executor + '.db')}", how, trials=6)
        values[executor] = [(t.params, t.value, t.values["train_loss"]) for t in study.trials]
    for a, b in zip(values["inline"], values["population"], strict=True):
        assert a[0] == b[0] and a[1] == b[1] and a[2] == pytest.approx(b[2], rel=1e-4)


def test_a_seeded_rolling_study_runs_the_same_twice(tmp_path):
    runs = []
    for i in range(2):
        study, _, reports = _rolling(f"sqlite:///{tmp_path / f'{i}.db'}", "population", trials=9, scheduler="asha",
                                     members=3)
        runs.append(([(t.number, t.params, t.state, t.value) for t in study.trials], reports))
    assert runs[0] == runs[1]


ACTIVATIONS = tl.Space(activation=tl.Choice(["relu", "tanh"]), epochs=tl.Int(1, 4))


def train_activation(trial):
    p = trial.params
    act = nn.ReLU if p.activation == "relu" else nn.Tanh  # two architectures: never one population
    return fit(lambda: nn.Sequential(nn.Linear(3, 16), act(), nn.Linear(16, 3)), TRAIN, VAL, trial=trial, lr=1e-2,
               epochs=p.epochs, batch_size=50, seed=trial.seed, inspect_every=0, predictions=False).metrics


def test_a_trial_that_cannot_join_trains_beside_the_running_population(storage):
    """A new trial whose model the running population cannot hold (another architecture) starts a
    population of its own next round, and both train in turn, an epoch each: it does not wait for the
    running one to end."""
    from tuneloop.search import Listed

    configs = [{"activation": a, "epochs": e} for a, e in (("relu", 4), ("relu", 1), ("tanh", 2), ("tanh", 1))]
    study, summary, reports = _rolling(storage, "population", trials=4, fn=train_activation, space=ACTIVATIONS,
                                       members=2, searcher=Listed(configs))
    assert summary.outcomes == {"completed": 4}
    assert reports.index((2, 2)) < reports.index((0, 4)), reports


MAYBE_FIT = tl.Space(fits=tl.Choice(["yes", "no"]), epochs=tl.Int(1, 4))


def fit_or_not(trial):
    p = trial.params
    if p.fits == "no":  # a trial that ends without training (a configuration it rejects)
        trial.report(1, val_acc=0.0)
        return {"val_acc": 0.0}
    return train_for_epochs(trial)


def test_a_trial_that_ends_without_training_frees_its_slot_at_the_next_epoch_boundary(storage):
    from tuneloop.search import Listed

    configs = [{"fits": f, "epochs": e, "lr": 1e-2} for f, e in (("yes", 4), ("yes", 1), ("no", 1), ("yes", 1))]
    space = tl.Space(fits=MAYBE_FIT["fits"], epochs=MAYBE_FIT["epochs"], lr=ROLLING["lr"])
    _, summary, reports = _rolling(storage, "population", trials=4, fn=fit_or_not, space=space, members=2,
                                   searcher=Listed(configs))
    assert summary.outcomes == {"completed": 4}
    assert reports.index((3, 1)) < reports.index((0, 3)), reports  # trial 2's slot went to trial 3 at once


def late(trial):
    if trial.number == 0:
        assert _SECOND_STARTED.wait(60)  # trial 1 runs before the run is abandoned: it is the straggler
        trial.report(1, val_acc=0.5)  # the callback raises here in the first run: the run is abandoned
        return {"val_acc": 0.5}
    import time

    _SECOND_STARTED.set()
    straggler = not _ABANDONED.is_set()
    while not _ABANDONED.is_set():  # still in user code when the run is abandoned
        time.sleep(0.01)
    trial.log(5, late=1.0 if straggler else 2.0)
    trial.report(2, val_acc=0.7)
    return {"val_acc": 0.7}


_ABANDONED = threading.Event()
_SECOND_STARTED = threading.Event()


class _Boom(tl.Callback):
    def __init__(self):
        self.seen = []

    def on_report(self, number, step, metrics):
        self.seen.append((number, threading.current_thread().name))
        if number == 0:
            raise _Enough("boom")

    def on_log(self, number, step, values):
        self.seen.append((number, threading.current_thread().name))


def test_a_trial_still_running_when_the_run_is_abandoned_reaches_no_driver(storage):
    """Its thread's events after the run ended are refused (its thread ends), never handed to the driver
    from its own thread, and a second run on the same executor object does not receive them."""
    from tuneloop.run._population import PopulationExecutor

    executor = PopulationExecutor(members=2)
    boom = _Boom()
    study = tl.Study("late", SPACE, late, metric="val_acc", mode="max", storage=storage, seed=0)
    with pytest.raises(_Enough):
        study.run(2, searcher="random", executor=executor, callbacks=[boom])
    straggler = next(t for t in threading.enumerate() if t.name == "tuneloop-trial-1")
    _ABANDONED.set()
    straggler.join(timeout=30)
    assert not straggler.is_alive()
    assert boom.seen == [(0, "MainThread")]
    try:
        summary = study.run(3, searcher="random", executor=executor)  # the same executor: a new session
    finally:
        _ABANDONED.clear()
    assert summary.outcomes == {"completed": 3}
    store = Store(storage)
    trials = store.trials(store.get_study("late").id)
    series = store.series([t.id for t in trials], names=["late"])
    values = [v for t in trials for _, v in series[t.id].get("late", [])]
    assert values and 1.0 not in values  # the abandoned thread's log reached no run
