"""Accuracy against latency on MNIST-1D: a Pareto front of MLPs, small enough to ship.

    tuneloop run examples/multi_objective_mnist1d.py --trials 24 --workers 2   # about a minute on 2 CPU cores
    tuneloop best mnist1d-accuracy-latency          # the front: every trial no other beats on both objectives
    tuneloop finalize mnist1d-accuracy-latency --pick "max val_acc where latency_ms <= 0.0005" --seeds 5

Two objectives, the validation accuracy (higher is better) and the inference latency per example
(lower is better), and one constraint: at most 0.25 million parameters. A trial that breaks the
constraint is kept and shown, but never on the front, never ``study.best``, never picked.

``fit`` measures the costs itself and returns them beside the accuracy: ``params_m`` (trainable
parameters, millions), ``latency_ms`` (milliseconds per example on a held-out batch of 256, warm,
median of several passes), ``train_time_s`` and ``epoch_time_s``. Latency depends on the machine and
its load (on 2 CPU cores these MLPs take 0.0001 to 0.001 ms per example): compare trials of one run on
one machine, and re-measure the model you pick where it will run.
"""

import tuneloop as tl
from tuneloop.datasets import mnist1d
from tuneloop.torch import MLP, fit

space = tl.Space(
    width=tl.Int(16, 512, log=True),
    depth=tl.Int(1, 3),
    lr=tl.LogFloat(1e-3, 3e-2),
)


def train(trial: tl.Trial) -> dict:
    p = trial.params
    data = mnist1d()
    fit_on, heldout = trial.splits(data)  # (train, val) while tuning; (train, test) under finalize
    result = fit(
        lambda: MLP(data.n_features, data.n_classes, width=p.width, depth=p.depth), fit_on, heldout, trial=trial,
        optimizer="adamw", lr=p.lr, weight_decay=1e-4, batch_size=100, epochs=trial.budget.epochs,
        schedule="warmup_cosine", seed=trial.seed, inspect_every=0,
    )
    return result.metrics  # val_acc of the best epoch, with params_m, latency_ms and train_time_s


study = tl.Study(
    "mnist1d-accuracy-latency", space, train,
    objectives={"val_acc": "max", "latency_ms": "min"},
    constraints={"params_m": ("<=", 0.25)},
    budget={"epochs": 15},
    searcher="tpe",  # multi-objective TPE, told each trial's constraint violation
)

if __name__ == "__main__":  # `python examples/multi_objective_mnist1d.py` works too
    study.run(n_trials=24, workers=2, progress=True)
    for trial in sorted(study.front, key=lambda t: t.values["latency_ms"]):
        print(f"trial {trial.number}: val_acc {trial.values['val_acc']:.3f}, latency {trial.values['latency_ms']:.4f} ms, "
              f"{trial.values['params_m']:.3f} M parameters")
