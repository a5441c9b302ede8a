"""The night shift on MNIST-1D: a small MLP study whose trial function reads the knobs the starter
catalogue's ideas turn (optimizer, schedule, label smoothing, dropout), so each idea is an override.

    tuneloop run examples/night_shift.py --trials 12 --workers 2   # the evening: a baseline study
    tuneloop idea seed-catalog                                     # the starter catalogue of ideas
    tuneloop idea plan examples/night_shift.py --hours 0.05 --queue --adopt-if "better and p < 0.05"
    tuneloop queue run --hours 1                                   # the night
    tuneloop morning --html morning.html                           # the morning

docs/night-shift.md walks through it with the output of a real run.
"""

import tuneloop as tl
from tuneloop.datasets import mnist1d
from tuneloop.torch import MLP, fit

space = tl.Space(
    lr=tl.LogFloat(1e-3, 3e-2),
    width=tl.Int(64, 256, log=True),
    weight_decay=tl.LogFloat(1e-6, 1e-3),
)


def model(p: dict) -> MLP:
    """The model of a configuration: the study's trials and the check ladder build it the same way."""
    return MLP(40, 10, width=p.get("width", 128), depth=2, dropout=p.get("dropout", 0.0))


def train(trial: tl.Trial) -> dict:
    p = trial.params
    fit_on, heldout = trial.splits(mnist1d())
    result = fit(
        lambda: model(dict(p)), fit_on, heldout, trial=trial,
        optimizer=p.get("optimizer", "adam"), lr=p.lr, weight_decay=p.weight_decay,
        schedule=p.get("schedule", "constant"), label_smoothing=p.get("label_smoothing", 0.0),
        epochs=trial.budget.epochs, seed=trial.seed,
    )
    return result.metrics


study = tl.Study("night-mlp", space, train, metric="val_acc", mode="max", budget={"epochs": 12}, searcher="tpe")

# the ladder an idea's variant runs before its A/B test: `model` gets the variant's configuration,
# and the overrides that are fit's arguments (optimizer, schedule, label_smoothing, ...) go into fit
checks = tl.Checks(model, data=mnist1d(), fit={"lr": 3e-3, "batch_size": 128, "epochs": 5})
