"""Tune an MLP on MNIST-1D with a plain PyTorch training loop.

    tuneloop run examples/mnist1d_mlp.py --trials 16 --workers 2
    tuneloop best mnist1d-mlp

Any training code plugs in the same way: read ``trial.params``, call ``trial.report`` once
per epoch, and return when ``trial.should_stop()`` says so.
"""

import torch
from torch import nn

import tuneloop as tl
from tuneloop.datasets import mnist1d

space = tl.Space(
    lr=tl.LogFloat(1e-4, 3e-2),
    weight_decay=tl.LogFloat(1e-6, 1e-2),
    width=tl.Int(32, 512, log=True),
    dropout=tl.Float(0.0, 0.5),
    optimizer=tl.Choice({"sgd": {"momentum": tl.Float(0.0, 0.99)}, "adam": {}}),
)


def train(trial: tl.Trial) -> dict:
    p = trial.params
    torch.manual_seed(trial.seed)
    data = mnist1d()
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    x_val, y_val = torch.from_numpy(data.x_val), torch.from_numpy(data.y_val)
    model = nn.Sequential(
        nn.Linear(40, p.width), nn.ReLU(), nn.Dropout(p.dropout),
        nn.Linear(p.width, p.width), nn.ReLU(), nn.Dropout(p.dropout),
        nn.Linear(p.width, 10),
    )
    if p.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=p.lr, momentum=p.momentum, weight_decay=p.weight_decay)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    best = {"val_acc": 0.0}
    for epoch in range(1, trial.budget.epochs + 1):
        model.train()
        for idx in torch.randperm(len(y)).split(128):
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            logits = model(x_val)
            val_loss = nn.functional.cross_entropy(logits, y_val).item()
            val_acc = (logits.argmax(1) == y_val).float().mean().item()
        trial.report(epoch, train_loss=loss.item(), val_loss=val_loss, val_acc=val_acc)
        if val_acc > best["val_acc"]:
            best = {"val_acc": val_acc, "val_loss": val_loss, "best_epoch": epoch}
        if trial.should_stop():
            break
    return best  # the best validation epoch, not the last one


study = tl.Study("mnist1d-mlp", space, train, metric="val_acc", mode="max", budget={"epochs": 30},
                 searcher="tpe", scheduler={"name": "asha", "min_resource": 3})

if __name__ == "__main__":  # `python examples/mnist1d_mlp.py` works too
    study.run(n_trials=16, workers=2, progress=True)
    print(study.best)
