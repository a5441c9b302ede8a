"""The demo: tune an MLP on MNIST-1D for a couple of minutes, then finalize the best one (retrain
over seeds, test once).

This file is an ordinary experiment file (``tuneloop run -m tuneloop.demo`` would be the same
study): a space, a trial function that trains with ``tuneloop.torch.fit``, and a Study.
"""

from __future__ import annotations

from typing import Any

import tuneloop as tl
from tuneloop.datasets import MNIST1D_REFERENCE, mnist1d

space = tl.Space(
    lr=tl.LogFloat(1e-4, 3e-2),
    weight_decay=tl.LogFloat(1e-6, 1e-1),
    width=tl.Int(32, 512, log=True),
    depth=tl.Int(1, 3),
    dropout=tl.Float(0.0, 0.5),
    batch_size=tl.Choice([32, 64, 128, 256]),
    schedule=tl.Choice(["constant", "cosine"]),
    optimizer=tl.Choice({"sgd": {"momentum": tl.Float(0.0, 0.99)}, "adam": {}, "adamw": {}}),
)


def train(trial: tl.Trial) -> dict[str, float]:
    """Train one configuration; the study records the best validation epoch's metrics. While
    tuning, a trial that ran its whole budget also logs validation signals it gets wrong. Under
    ``tuneloop finalize`` the same function trains for the selected epochs and reports test_acc."""
    from tuneloop.torch import MLP, fit

    data = mnist1d()
    p = trial.params
    fit_on, heldout = trial.splits(data)  # (train, val) while tuning; (train, test) when final
    result = fit(
        lambda: MLP(data.n_features, data.n_classes, width=p.width, depth=p.depth, dropout=p.dropout),
        fit_on, heldout, trial=trial, optimizer=p.optimizer, lr=p.lr, weight_decay=p.weight_decay,
        momentum=p.get("momentum"), batch_size=p.batch_size, epochs=trial.budget.epochs, schedule=p.schedule,
        seed=trial.seed,
    )
    if trial.phase == "tune" and not result.stopped_early:
        trial.log_sample(result.best_epoch, "misclassified", _misclassified_figure(result.model), kind="image")
    return result.metrics


def _misclassified_figure(model: Any) -> Any:
    """Up to 8 validation signals the model gets wrong, each titled 'true -> predicted'."""
    import matplotlib

    matplotlib.use("Agg")  # no display in workers
    import torch
    from matplotlib.figure import Figure

    data = mnist1d()
    with torch.no_grad():
        device = next(model.parameters()).device
        pred = model(torch.as_tensor(data.x_val, device=device)).argmax(-1).cpu().numpy()
    wrong = (pred != data.y_val).nonzero()[0][:8]
    fig = Figure(figsize=(8, 3.2), dpi=80)
    for i, idx in enumerate(wrong):
        ax = fig.add_subplot(2, 4, i + 1)
        ax.plot(data.x_val[idx], lw=1)
        ax.set_title(f"{data.y_val[idx]} -> {pred[idx]}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


study = tl.Study(
    "demo-mnist1d-mlp", space, train, metric="val_acc", mode="max",
    budget={"epochs": 40}, searcher="tpe",
    # the first rung at epoch 3 (then 9, 27): epoch-1 accuracy is too noisy to judge a configuration by
    scheduler={"name": "asha", "min_resource": 3},
)


REFERENCE = MNIST1D_REFERENCE
RERANK = 6  # the best configurations run again on validation ...
RERANK_SEEDS = 3  # ... until each has this many runs; the best mean over seeds is finalized
FINAL_SEEDS = 5  # retrained on train+val over this many seeds, each tested once
