"""Sweep many MLP configurations on MNIST-1D at once with the population executor.

    tuneloop run examples/mnist1d_population.py --trials 64                      # one population of 64
    tuneloop run examples/mnist1d_population.py --trials 128 --scheduler asha    # stopped members leave
    tuneloop run examples/mnist1d_population.py --trials 64 --executor processes --workers 2   # to compare

The trial function is an ordinary one: under ``executor="population"`` its ``fit`` call joins the
other trials' and the engine trains them as one stacked model (docs/population.md). Everything
searched here is a per-member value (learning rate, weight decay, Adam's beta1, dropout rate,
label smoothing, warmup), so all members share one architecture and train in one pass; a searched
width or depth would split them into buckets of equal shape.
"""

import tuneloop as tl
from tuneloop.datasets import mnist1d
from tuneloop.torch import MLP, fit

space = tl.Space(
    lr=tl.LogFloat(1e-4, 3e-2),
    weight_decay=tl.LogFloat(1e-6, 1e-2),
    beta1=tl.Float(0.8, 0.99),
    dropout=tl.Float(0.01, 0.3),
    label_smoothing=tl.Float(0.0, 0.2),
    warmup=tl.Float(0.0, 0.2),
)


def train(trial: tl.Trial) -> dict:
    p = trial.params
    data = mnist1d()
    fit_on, heldout = trial.splits(data)
    result = fit(
        lambda: MLP(data.n_features, data.n_classes, width=100, depth=2, dropout=p.dropout),
        fit_on, heldout, trial=trial, optimizer="adam", lr=p.lr, weight_decay=p.weight_decay,
        betas=(p.beta1, 0.999), label_smoothing=p.label_smoothing, schedule="warmup_cosine", warmup=p.warmup,
        epochs=trial.budget.epochs, batch_size=100, seed=trial.seed,
    )
    return result.metrics


study = tl.Study("mnist1d-population", space, train, metric="val_acc", mode="max", budget={"epochs": 20},
                 searcher="sobol", executor={"name": "population", "members": 64})
