"""Tune the MNIST-1D paper's CNN with tuneloop's reference trainer.

    tuneloop run examples/mnist1d_cnn.py --trials 24 --workers 2 --scheduler asha
"""

import tuneloop as tl
from tuneloop.datasets import mnist1d
from tuneloop.torch import CNN, fit

space = tl.Space(
    lr=tl.LogFloat(3e-4, 3e-2),
    weight_decay=tl.LogFloat(1e-6, 1e-2),
    channels=tl.Int(16, 64, log=True),
    kernel=tl.Choice([3, 5, 7]),
    optimizer=tl.Choice(["adam", "adamw", "nesterov"]),
    schedule=tl.Choice(["constant", "cosine"]),
)


def train(trial: tl.Trial) -> dict:
    p = trial.params
    data = mnist1d()
    fit_on, heldout = trial.splits(data)  # (train, val) while tuning; (train, test) under finalize
    result = fit(
        lambda: CNN(data.n_features, data.n_classes, channels=p.channels, kernel=p.kernel),
        fit_on, heldout, trial=trial, optimizer=p.optimizer, lr=p.lr, weight_decay=p.weight_decay,
        schedule=p.schedule, epochs=trial.budget.epochs, batch_size=100, seed=trial.seed,
    )
    return result.metrics


study = tl.Study("mnist1d-cnn", space, train, metric="val_acc", mode="max", budget={"epochs": 30},
                 searcher="tpe", scheduler={"name": "asha", "min_resource": 3})
