"""``fit``: a small, deterministic reference trainer that reports to a Trial every epoch.

    result = fit(lambda: MLP(40, 10, width=p.width), data.train, data.val, trial=trial,
                 optimizer=p.optimizer, lr=p.lr, epochs=trial.budget.epochs, seed=trial.seed)
    return result.metrics          # the best validation epoch's metrics

The reported result is the best validation epoch (retrospective checkpoint selection), and
``result.model`` holds that epoch's weights.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from tuneloop._validation import check_one_of, check_positive_int

OPTIMIZERS = ("adam", "adamw", "momentum", "nesterov", "rmsprop", "sgd")
SCHEDULES = ("constant", "cosine", "step", "warmup_cosine")

Data = tuple[Any, Any]


@dataclass
class FitResult:
    """What ``fit`` returns: the best epoch's model and metrics, and every epoch's metrics."""

    model: nn.Module
    best_epoch: int
    metrics: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False


def _tensors(data: Data, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = data
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x, dtype=torch.float32)
    y = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y)
    return x.to(device), y.to(device)


def make_optimizer(name: str, params: Any, lr: float, weight_decay: float = 0.0,
                   momentum: float | None = None) -> torch.optim.Optimizer:
    """An optimizer by name. ``momentum`` defaults to 0.9 for momentum/nesterov, 0 for sgd/rmsprop."""
    check_one_of(name, OPTIMIZERS, "optimizer", "fit")
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, weight_decay=weight_decay, momentum=momentum or 0.0)
    if momentum is None:
        momentum = 0.0 if name == "sgd" else 0.9
    return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=name == "nesterov")


def lr_factor(schedule: str, step: int, total: int, warmup: float = 0.05) -> float:
    """The multiplier of the base learning rate at ``step`` of ``total``."""
    check_one_of(schedule, SCHEDULES, "schedule", "fit")
    progress = step / max(total, 1)
    if schedule == "constant":
        return 1.0
    if schedule == "step":
        return 0.1 ** (int(progress >= 0.5) + int(progress >= 0.75))
    if schedule == "warmup_cosine":
        n_warm = max(1, int(warmup * total))
        if step < n_warm:
            return (step + 1) / n_warm
        progress = (step - n_warm) / max(total - n_warm, 1)
    return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def fit(
    model: nn.Module | Callable[[], nn.Module],
    train: Data,
    val: Data,
    *,
    trial: Any = None,
    optimizer: str = "adam",
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    momentum: float | None = None,
    batch_size: int = 128,
    epochs: int = 10,
    schedule: str = "constant",
    warmup: float = 0.05,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> FitResult:
    """Train a classifier with cross-entropy; report train_loss, val_loss, val_acc each epoch.

    ``model`` may be a function that builds it, so the initialization is seeded too. The
    trial (if given) hears every epoch and may stop the run; a non-finite loss ends it with
    NaN metrics, which the study records as ``diverged``.
    """
    check_positive_int(epochs, "epochs", "fit")
    check_positive_int(batch_size, "batch_size", "fit")
    torch.manual_seed(seed)
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    net = (model() if not isinstance(model, nn.Module) else model).to(dev)
    x_train, y_train = _tensors(train, dev)
    x_val, y_val = _tensors(val, dev)
    opt = make_optimizer(optimizer, net.parameters(), lr, weight_decay, momentum)
    steps_per_epoch = math.ceil(len(y_train) / batch_size)
    total = steps_per_epoch * epochs
    gen = torch.Generator(device="cpu").manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    history: list[dict[str, float]] = []
    best: tuple[float, int, dict[str, float], dict[str, Any]] | None = None
    step, stopped = 0, False
    for epoch in range(1, epochs + 1):
        net.train()
        order = torch.randperm(len(y_train), generator=gen).to(dev)
        total_loss, diverged = 0.0, False
        for i in range(steps_per_epoch):
            idx = order[i * batch_size:(i + 1) * batch_size]
            for group in opt.param_groups:
                group["lr"] = lr * lr_factor(schedule, step, total, warmup)
            loss = loss_fn(net(x_train[idx]), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if not torch.isfinite(loss):
                diverged = True
                break
            total_loss += loss.item() * len(idx)
        if diverged:
            metrics = {"train_loss": math.nan, "val_loss": math.nan, "val_acc": math.nan}
        else:
            metrics = {"train_loss": total_loss / len(y_train), **evaluate(net, (x_val, y_val), prefix="val_")}
        history.append({"epoch": float(epoch), **metrics})
        if trial is not None:
            trial.report(epoch, **metrics)
        if diverged:
            stopped = True
            break
        if best is None or metrics["val_acc"] > best[0]:
            best = (metrics["val_acc"], epoch, metrics, copy.deepcopy(net.state_dict()))
        if trial is not None and trial.should_stop():
            stopped = True
            break
    if best is None:
        return FitResult(net, 0, history[-1], history, stopped_early=True)
    net.load_state_dict(best[3])
    return FitResult(net, best[1], dict(best[2]), history, stopped_early=stopped)


@torch.no_grad()
def evaluate(model: nn.Module, data: Data, *, prefix: str = "", batch_size: int = 4096) -> dict[str, float]:
    """Cross-entropy loss and accuracy of a classifier on ``data``."""
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    x, y = _tensors(data, dev)
    loss_sum, correct = 0.0, 0
    for i in range(0, len(y), batch_size):
        logits = model(x[i:i + batch_size])
        loss_sum += nn.functional.cross_entropy(logits, y[i:i + batch_size], reduction="sum").item()
        correct += (logits.argmax(1) == y[i:i + batch_size]).sum().item()
    model.train(was_training)
    return {f"{prefix}loss": loss_sum / len(y), f"{prefix}acc": correct / len(y)}
