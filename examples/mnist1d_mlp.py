"""Tune an MLP on MNIST-1D with tuneloop's reference trainer.

    tuneloop run examples/mnist1d_mlp.py --trials 16 --workers 2
    tuneloop best mnist1d-mlp
    tuneloop show mnist1d-mlp 0        # curves, alerts, per-class slices, confusion matrix
    tuneloop check examples/mnist1d_mlp.py   # first: can the model learn at all? beats the baselines?
    tuneloop finalize mnist1d-mlp --top 3 --seeds 5   # last: retrain the best, test once, mean ± CI
    tuneloop ensemble mnist1d-mlp                     # vote / average / stack them, gain with its CI

``fit`` reports every epoch, obeys the scheduler, logs histograms and health numbers that the
default alert rules watch, and returns the best validation epoch's metrics. Any other training
code plugs in the same way: read ``trial.params``, call ``trial.report`` once per epoch, and
return when ``trial.should_stop()`` says so.
"""

import tuneloop as tl
from tuneloop.datasets import mnist1d
from tuneloop.torch import MLP, fit

space = tl.Space(
    lr=tl.LogFloat(1e-4, 3e-2),
    weight_decay=tl.LogFloat(1e-6, 1e-2),
    width=tl.Int(32, 512, log=True),
    dropout=tl.Float(0.0, 0.5),
    clip=tl.Choice([None, 1.0]),
    optimizer=tl.Choice({"sgd": {"momentum": tl.Float(0.0, 0.99)}, "adam": {}}),
)


def train(trial: tl.Trial) -> dict:
    p = trial.params
    data = mnist1d()
    fit_on, heldout = trial.splits(data)  # (train, val) while tuning; (train, test) under finalize
    result = fit(
        lambda: MLP(data.n_features, data.n_classes, width=p.width, depth=2, dropout=p.dropout),
        fit_on, heldout, trial=trial, optimizer=p.optimizer, lr=p.lr, weight_decay=p.weight_decay,
        momentum=p.get("momentum"), clip=p.clip, schedule="warmup_cosine", epochs=trial.budget.epochs,
        patience=10, seed=trial.seed,
    )
    return result.metrics  # the best validation epoch, not the last one


study = tl.Study("mnist1d-mlp", space, train, metric="val_acc", mode="max", budget={"epochs": 30},
                 searcher="tpe", scheduler={"name": "asha", "min_resource": 3})

# Before tuning: `tuneloop check examples/mnist1d_mlp.py` runs these (and the baselines), fastest first.
checks = tl.Checks(
    lambda: MLP(40, 10, width=128, depth=2), data=mnist1d(), fit={"lr": 3e-3, "batch_size": 128, "epochs": 10},
    modules=["2"],  # the hidden layer, checked on its own input too
    stages=[tl.Stage("10% of the data", fraction=0.1, at_least=0.25),
            tl.Stage("all the data", beats_previous=True)],
)

if __name__ == "__main__":  # `python examples/mnist1d_mlp.py` works too
    study.run(n_trials=16, workers=2, progress=True)
    print(study.best)
