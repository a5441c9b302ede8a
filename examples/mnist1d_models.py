"""MNIST-1D, the whole loop: which model family wins when each is tuned fairly, and by how much?

docs/mnist1d.md walks it from the shell (baselines and checks, an exploration round, a refined
round with ASHA, finalize, ensembles) in under 20 minutes on 2 CPU cores:

    tuneloop check examples/mnist1d_models.py
    tuneloop run examples/mnist1d_models.py --trials 36 --workers 2 --scheduler none
    tuneloop refine mnist1d-models -o mnist1d_models_r2.py
    tuneloop run mnist1d_models_r2.py --trials 36 --workers 2
    tuneloop finalize mnist1d-models-r2 --per model --rounds all --top 1 --seeds 5 --fit-on train+val --workers 2
    tuneloop ensemble mnist1d-models-r2

``model`` is the round's scientific parameter: each family gets the same number of trials and its
own search over the learning rate, weight decay and its architecture (the nuisance parameters).
"""

import tuneloop as tl
from tuneloop.datasets import mnist1d
from tuneloop.torch import CNN, GRU, MLP, fit

space = tl.Space(
    model=tl.Choice({
        "mlp": {"width": tl.Int(64, 512, log=True), "depth": tl.Int(1, 3), "dropout": tl.Float(0.0, 0.5)},
        "cnn": {"channels": tl.Int(16, 64, log=True), "kernel": tl.Choice([3, 5, 7])},
        "gru": {"hidden": tl.Int(32, 128, log=True)},
    }),
    lr=tl.LogFloat(1e-3, 3e-2),
    weight_decay=tl.LogFloat(1e-6, 1e-2),
)


def build(p: tl.Params, n_features: int, n_classes: int):
    if p.model == "mlp":
        return MLP(n_features, n_classes, width=p.width, depth=p.depth, dropout=p.dropout)
    if p.model == "cnn":
        return CNN(n_features, n_classes, channels=p.channels, kernel=p.kernel)
    return GRU(n_features, n_classes, hidden=p.hidden)


def train(trial: tl.Trial) -> dict:
    p = trial.params
    data = mnist1d()
    fit_on, heldout = trial.splits(data)  # (train, val) while tuning; (train [+ val], test) in finalize
    result = fit(
        lambda: build(p, data.n_features, data.n_classes), fit_on, heldout, trial=trial, optimizer="adamw",
        lr=p.lr, weight_decay=p.weight_decay, batch_size=100, epochs=trial.budget.epochs, schedule="warmup_cosine",
        clip=1.0, seed=trial.seed, inspect_every=0,
    )
    return result.metrics  # the best validation epoch while tuning; the last epoch when final


# Round 1 explores with every trial at full budget (--scheduler none); later rounds inherit asha, whose
# first rung at epoch 5 judges each model family against itself only (a scientific parameter).
study = tl.Study("mnist1d-models", space, train, metric="val_acc", mode="max", budget={"epochs": 60},
                 scientific=["model"], scheduler={"name": "asha", "min_resource": 5})

# `tuneloop check examples/mnist1d_models.py`: can the paper's CNN learn at all, and is deep learning needed?
checks = tl.Checks(
    lambda: CNN(40, 10), data=mnist1d(), fit={"lr": 1e-2, "batch_size": 100, "epochs": 10},
    stages=[tl.Stage("10% of the data", fraction=0.1, at_least=0.25),
            tl.Stage("all the data", beats_previous=True)],
)
