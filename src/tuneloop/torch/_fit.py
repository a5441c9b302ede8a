"""``fit``: the reference trainer. Deterministic under a seed, reports to a Trial every epoch.

    result = fit(lambda: MLP(40, 10, width=p.width), data.train, data.val, trial=trial,
                 optimizer=p.optimizer, lr=p.lr, schedule="warmup_cosine", clip=1.0,
                 epochs=trial.budget.epochs, patience=10, seed=trial.seed)
    return result.metrics          # the best validation epoch's metrics

The reported result is the best validation epoch (retrospective checkpoint selection) and
``result.model`` holds that epoch's weights. Each epoch reports train_loss, val_loss (and
val_acc for classification); every ``log_every`` steps it logs ``step/train_loss`` and
``step/lr``, and every ``inspect_every`` steps the Inspector's histograms and health numbers.
Each epoch's report also holds the cost metrics (``cost_metrics=False`` leaves them out):
``params_m`` (trainable parameters, millions), ``train_time_s`` (seconds of training so far,
evaluation excluded), ``epoch_time_s`` (the last epoch's) and ``latency_ms`` (inference time per
example on a held-out batch, measured once after the first epoch); see :mod:`tuneloop.torch._cost`.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import torch
from torch import nn

from tuneloop._validation import check_one_of, check_positive_int
from tuneloop.torch._cost import COST_METRICS, TrainClock, latency_ms, params_m, seconds
from tuneloop.torch._data import Batches, batches
from tuneloop.torch._inspect import Inspector

OPTIMIZERS = ("adam", "adamw", "momentum", "nesterov", "rmsprop", "sgd")
SCHEDULES = ("constant", "cosine", "one_cycle", "plateau", "step", "warmup_cosine")
LOSSES = ("cross_entropy", "mse")


@dataclass
class FitResult:
    """What ``fit`` returns: the best epoch's model and metrics, and every epoch's metrics."""

    model: nn.Module
    best_epoch: int
    metrics: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False


def make_optimizer(name: str, params: Any, lr: float, weight_decay: float = 0.0,
                   momentum: float | None = None, betas: tuple[float, float] = (0.9, 0.999),
                   eps: float = 1e-8) -> torch.optim.Optimizer:
    """An optimizer by name. ``momentum`` defaults to 0.9 for momentum/nesterov, 0 for sgd/rmsprop;
    ``betas`` and ``eps`` are Adam's and AdamW's (``eps`` also RMSprop's)."""
    check_one_of(name, OPTIMIZERS, "optimizer", "fit")
    if name in ("adam", "adamw"):
        adam = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        pair = cast(tuple[float, float], tuple(betas))  # tuple(): a list from a config file becomes the pair
        return adam(params, lr=lr, weight_decay=weight_decay, betas=pair, eps=eps)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, weight_decay=weight_decay, momentum=momentum or 0.0, eps=eps)
    if momentum is None:
        momentum = 0.0 if name == "sgd" else 0.9
    return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=name == "nesterov")


def lr_factor(schedule: str, step: int, total: int, warmup: float = 0.05) -> float:
    """The multiplier of the base learning rate at ``step`` of ``total`` (formula schedules)."""
    check_one_of(schedule, SCHEDULES, "schedule", "fit")
    progress = step / max(total, 1)
    if schedule in ("constant", "plateau", "one_cycle"):
        return 1.0
    if schedule == "step":
        return 0.1 ** (int(progress >= 0.5) + int(progress >= 0.75))
    if schedule == "warmup_cosine":
        n_warm = max(1, int(warmup * total))
        if step < n_warm:
            return (step + 1) / n_warm
        progress = (step - n_warm) / max(total - n_warm, 1)
    return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def make_schedule(name: str, opt: torch.optim.Optimizer, total: int, warmup: float,
                  mode: Literal["min", "max"]) -> Any:
    """A torch LR scheduler: stepped every batch, except ``plateau``, stepped every epoch."""
    check_one_of(name, SCHEDULES, "schedule", "fit")
    if name == "one_cycle":
        lrs = [g["lr"] for g in opt.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lrs, total_steps=max(total, 2),
                                                   pct_start=min(max(warmup, 0.05), 0.5))
    if name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode=mode, factor=0.1, patience=2)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(name, s, total, warmup))


def _loss_fn(loss: str | Callable[..., torch.Tensor], label_smoothing: float) -> Callable[..., torch.Tensor]:
    if callable(loss):
        return loss
    check_one_of(loss, LOSSES, "loss", "fit")
    return nn.CrossEntropyLoss(label_smoothing=label_smoothing) if loss == "cross_entropy" else nn.MSELoss()


def fit(
    model: nn.Module | Callable[[], nn.Module],
    train: Any,
    val: Any,
    *,
    trial: Any = None,
    loss: str | Callable[..., torch.Tensor] = "cross_entropy",
    optimizer: str = "adam",
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    momentum: float | None = None,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    batch_size: int = 128,
    epochs: int = 10,
    steps: int | None = None,
    schedule: str = "constant",
    warmup: float = 0.05,
    clip: float | None = None,
    label_smoothing: float = 0.0,
    init_scale: float = 1.0,
    patience: int | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    amp: bool | None = None,
    log_every: int = 50,
    inspect_every: int = 200,
    slices: Any = None,
    predictions: bool = True,
    cost_metrics: bool = True,
) -> FitResult:
    """Train ``model`` on ``train`` and select the best epoch on ``val``.

    ``train``/``val``: (x, y) tensors or arrays, or DataLoaders. ``loss``: ``"cross_entropy"``
    (classification: accuracy is reported and selects the epoch), ``"mse"`` or a callable
    (val_loss selects). ``steps`` overrides ``epochs``. ``patience``: stop after that many epochs
    without a better validation value. ``clip``: max gradient norm. ``amp``: mixed precision,
    on by default on CUDA. ``slices``: group labels of the validation examples (default: their
    class) for per-slice metrics of the best epoch. ``inspect_every=0`` turns the Inspector off.
    ``predictions``: save the selected epoch's outputs on ``val`` with the trial (for ensembles).
    ``init_scale`` multiplies the initial weights (not the biases).
    ``cost_metrics``: report ``params_m``, ``train_time_s``, ``epoch_time_s`` and ``latency_ms``
    every epoch (latency is measured once, after the first epoch, on up to 256 examples of ``val``);
    in ``result.metrics`` they are the whole run's (what training cost), beside the selected epoch's
    other metrics.

    Under the population executor (``executor="population"``) this call does not train at once:
    it joins the other trials' ``fit`` calls and trains with them in one vectorized pass
    (:func:`tuneloop.torch.fit_population`), returning the same result.

    In a final run (``trial.phase == "final"``, from ``tuneloop finalize``) ``val`` is the test
    split from ``trial.splits(data)``: metrics are named ``test_*``, every epoch runs (no
    selection, no early stopping on it) and the last epoch's model is the result.
    """
    train = _data_fraction(trial, train)  # before any executor takes the call, so every one trains on it
    arguments = dict(locals())
    from tuneloop.torch._session import current_session

    session = current_session()
    if session is not None:  # the population executor: train with the other trials' fit calls
        return session.fit(trial, arguments)
    check_positive_int(epochs, "epochs", "fit")
    check_positive_int(batch_size, "batch_size", "fit")
    loss_fn = _loss_fn(loss, label_smoothing)
    classify = loss == "cross_entropy"
    final = _final_phase(trial)
    prefix = f"{getattr(trial, 'heldout', 'val')}_"
    torch.manual_seed(seed)
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    net = build_model(model, dev, init_scale)
    train_batches = batches(train, batch_size, dev, shuffle=True, seed=seed)
    val_batches = batches(val, 4096, dev, shuffle=False, seed=seed)
    total = steps if steps is not None else train_batches.per_epoch * epochs
    n_epochs = math.ceil(total / train_batches.per_epoch)
    horizon = _horizon(trial, train_batches.per_epoch, total)
    opt = make_optimizer(optimizer, net.parameters(), lr, weight_decay, momentum, betas, eps)
    sched = make_schedule(schedule, opt, horizon, warmup, "max" if classify else "min")
    first_epoch, step, trained_s = _resume(trial, net, opt, sched, lr, weight_decay, momentum)
    clock = TrainClock(trained_s)
    cost = {"params_m": params_m(net)} if cost_metrics else None
    autocast, scaler = _mixed_precision(dev, amp)
    inspector = Inspector(net, trial, inspect_every)
    select = f"{prefix}acc" if classify else f"{prefix}loss"
    better = (lambda a, b: a > b) if classify else (lambda a, b: a < b)
    history: list[dict[str, float]] = []
    best: tuple[float, int, dict[str, float], dict[str, Any] | None] | None = None  # value, epoch, metrics, weights
    stopped, since_best = False, 0
    if trial is not None and classify:
        _log_init_loss(net, train_batches, loss_fn, trial)
    for epoch in range(first_epoch, n_epochs + 1):
        net.train()
        total_loss, seen, diverged = 0.0, 0, False
        clock.start()
        for x, y in train_batches.epoch(epoch):
            if step >= total:
                break
            inspector.before_forward(step)
            with autocast():
                batch_loss = loss_fn(net(x), y)
            opt.zero_grad(set_to_none=True)
            scaler.scale(batch_loss).backward()
            scaler.unscale_(opt)
            norm = _clip(net, clip, step, log_every, inspector.active)
            inspector.before_update(step)
            scaler.step(opt)
            scaler.update()
            inspector.after_update(step)
            if schedule != "plateau":
                sched.step()
            value = batch_loss.item()
            if not math.isfinite(value):
                diverged = True
                break
            if trial is not None and log_every and step % log_every == 0:
                extra = {} if norm is None else {"grad_norm": norm}
                trial.log(step, **{"step/train_loss": value, "step/lr": opt.param_groups[0]["lr"]}, **extra)
            total_loss += value * len(y)
            seen += len(y)
            step += 1
        clock.stop(dev)
        if diverged:
            metrics = {"train_loss": math.nan, f"{prefix}loss": math.nan, **({select: math.nan} if classify else {})}
        else:
            metrics = {"train_loss": total_loss / max(seen, 1),
                       **evaluate(net, val_batches, loss_fn, classify, prefix=prefix)}
        if cost is not None:
            if epoch == first_epoch:  # the architecture's latency, not the weights': once is enough
                held_out = next(iter(val_batches.epoch(0)), None)
                if held_out is not None:
                    cost["latency_ms"] = latency_ms(net, held_out[0])
            metrics.update(cost, **clock.metrics())
        history.append({"epoch": float(epoch), **metrics})
        if trial is not None:
            trial.report(epoch, **metrics)
        if diverged:
            stopped = True
            break
        if schedule == "plateau":  # a final run must not steer by the test split: it follows train loss
            sched.step(metrics["train_loss"] if final else metrics[select])
        if final or best is None or better(metrics[select], best[0]):
            best, since_best = (metrics[select], epoch, metrics, None if final else copy.deepcopy(net.state_dict())), 0
        else:
            since_best += 1
        if (trial is not None and trial.should_stop()) or (not final and patience is not None and since_best >= patience):
            stopped = True
            break
    if trial is not None and getattr(trial, "checkpointing", False) and history:
        save_checkpoint(trial, history, net.state_dict(), opt.state_dict(), step, torch.get_rng_state())
    if best is None:
        return FitResult(net, 0, history[-1], history, stopped_early=True)
    if best[3] is not None:
        net.load_state_dict(best[3])
    finish(trial, net, best[1], classify, slices, predictions, prefix, val_batches, seed)
    return FitResult(net, best[1], run_costs(best[2], history), history, stopped_early=stopped)


def _data_fraction(trial: Any, train: Any) -> Any:
    """``train``, or the trial's nested subset of it when the trial trains on a fraction (``tuneloop
    probe data``). An (x, y) pair is cut here; a Dataset or DataLoader the trial function cuts itself
    (``Subset(dataset, trial.subset_indices(labels))``), and a split it already cut (``trial.subset``)
    is trained on as given. The examples trained on are recorded with the trial (``train_examples``,
    and per class ``train_examples/class 3``) when ``train`` is a pair, so the probe reads the sizes."""
    if trial is None or not getattr(trial, "probing_data", False):
        return train
    from tuneloop._subset import class_counts, is_pair, take_subset
    from tuneloop.errors import ConfigError

    fraction = trial.fraction
    if not getattr(trial, "subset_taken", False):
        if is_pair(train) or fraction == 1.0:
            train = take_subset(train, fraction, trial.data_seed)
        else:
            raise ConfigError(
                f"This trial trains on {fraction:g} of its training split, which fit takes of an (x, y) pair only; "
                f"got a {type(train).__name__}. Pass a DataLoader over torch.utils.data.Subset(dataset, "
                "trial.subset_indices(labels)): fit trains on it as given.")
    trial.set_attr("fraction", float(fraction))
    if is_pair(train):
        trial.set_attr("train_examples", len(train[1]))
        for name, n in class_counts(train[1]).items():
            trial.set_attr(f"train_examples/{name}", n)
    return train


def run_costs(selected: dict[str, float], history: list[dict[str, float]]) -> dict[str, float]:
    """The selected epoch's metrics with the cost metrics of the last epoch: what the run cost,
    not what it had cost when the selected epoch ended."""
    last = history[-1] if history else {}
    return {**selected, **{k: last[k] for k in COST_METRICS if k in last}}


def build_model(model: nn.Module | Callable[[], nn.Module], dev: torch.device, init_scale: float) -> nn.Module:
    """The model (built now if given as a function, under the caller's seed), on ``dev``, its
    weights scaled by ``init_scale``."""
    net = (model() if not isinstance(model, nn.Module) else model).to(dev)
    if init_scale != 1.0:
        with torch.no_grad():
            for p in net.parameters():
                if p.dim() > 1:
                    p.mul_(init_scale)
    return net


def save_checkpoint(trial: Any, history: list[dict[str, float]], model: dict[str, Any], optimizer: dict[str, Any],
                    step: int, rng: torch.Tensor) -> None:
    """The last epoch's state, so a scheduler can continue training from it (and the training time
    so far, so a continued run's ``train_time_s`` counts the whole training)."""
    epoch = int(history[-1]["epoch"])
    state = {"model": model, "optimizer": optimizer, "epoch": epoch, "step": step, "rng": rng}
    if "train_time_s" in history[-1]:
        state["train_time_s"] = float(history[-1]["train_time_s"])
    trial.save_checkpoint(epoch, state)


def finish(trial: Any, net: nn.Module, epoch: int, classify: bool, slices: Any, predictions: bool, prefix: str,
           val_batches: Batches, seed: int, outputs: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
    """Log the selected model's per-slice metrics and held-out predictions with the trial.
    ``outputs``: the model's (logits, targets) on ``val_batches`` when already computed."""
    if trial is None:
        return
    if classify:
        from tuneloop.torch._slices import log_slices

        log_slices(trial, epoch, net, val_batches, groups=slices, outputs=outputs)
    if predictions:
        dev = next(net.parameters()).device
        extra = [(name, batches(data, 4096, dev, shuffle=False, seed=seed)) for name, data in _extra(trial)]
        if outputs is not None:
            logits, targets = outputs
            trial.log_predictions(epoch, prefix[:-1], logits.float().softmax(-1) if classify else logits, targets)
            _log_predictions(trial, epoch, net, classify, extra)
        else:
            _log_predictions(trial, epoch, net, classify, [(prefix[:-1], val_batches), *extra])


def _horizon(trial: Any, per_epoch: int, total: int) -> int:
    """Steps the LR schedule spans: the whole budget when a scheduler trains a configuration in
    segments (``budget["schedule_epochs"]``), so a continued segment continues the same curve."""
    budget = getattr(trial, "budget", None)
    if budget is not None and "schedule_epochs" in budget:
        return max(total, int(budget["schedule_epochs"]) * per_epoch)
    return total


def _resume(trial: Any, net: nn.Module, opt: torch.optim.Optimizer, sched: Any, lr: float, weight_decay: float,
            momentum: float | None) -> tuple[int, int, float]:
    """Load the checkpoint the trial starts from (if any): weights, optimizer state and random state,
    then this trial's own hyperparameters (PBT may have changed them); return (first epoch, step,
    seconds trained before)."""
    found = trial.load_checkpoint() if trial is not None and hasattr(trial, "load_checkpoint") else None
    if found is None:
        return 1, 0, 0.0
    state = _checked_state(found[1])
    net.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    for group in opt.param_groups:
        group["weight_decay"] = weight_decay
        if momentum is not None and "momentum" in group:
            group["momentum"] = momentum
    if hasattr(sched, "base_lrs"):
        sched.base_lrs = [lr for _ in opt.param_groups]
    import warnings

    with warnings.catch_warnings():  # stepping the schedule to where training stopped, before any update
        warnings.simplefilter("ignore")
        for _ in range(int(state["step"])):
            if not isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                sched.step()
    if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
        for group in opt.param_groups:
            group["lr"] = lr
    torch.set_rng_state(state["rng"])
    return int(state["epoch"]) + 1, int(state["step"]), seconds(state.get("train_time_s"))


def _checked_state(state: Any) -> dict[str, Any]:
    """``state`` if it has the shape :func:`save_checkpoint` writes (a checkpoint file is untrusted
    data: a wrong one fails the trial with its cause, not deep inside torch), else ConfigError."""
    from tuneloop.errors import ConfigError

    fields = {"model": dict, "optimizer": dict, "epoch": int, "step": int, "rng": torch.Tensor}
    wrong = [k for k, kind in fields.items() if not isinstance(state, dict) or not isinstance(state.get(k), kind)
             or (kind is int and (isinstance(state[k], bool) or state[k] < 0))]
    if wrong:
        raise ConfigError(f"The checkpoint this trial continues from is not one fit saved (bad or missing: "
                          f"{', '.join(wrong)}); it needs model, optimizer, epoch, step and rng. Rerun the trial "
                          "that saved it, or start the study afresh.")
    return state


def _final_phase(trial: Any) -> bool:
    """True in a finalize run; there ``fit`` must be fed ``trial.splits(data)``, or it could not
    know that its ``val`` argument is the test split."""
    if trial is None or getattr(trial, "phase", "tune") != "final":
        return False
    if not getattr(trial, "splits_used", True):
        from tuneloop.errors import ConfigError

        raise ConfigError(
            "This is a final run (tuneloop finalize) but the trial function did not call trial.splits(data); "
            "write `fit_on, heldout = trial.splits(data)` and pass those two to fit, so training never sees "
            "the test split and the result is measured on it."
        )
    return True


def _extra(trial: Any) -> list[tuple[str, Any]]:
    extra = trial.extra_heldout() if hasattr(trial, "extra_heldout") else None
    return [] if extra is None else [extra]


@torch.no_grad()
def _log_predictions(trial: Any, step: int, net: nn.Module, classify: bool, splits: list[tuple[str, Batches]]) -> None:
    """The model's outputs (class probabilities for a classifier) on each held-out split."""
    was_training = net.training
    net.eval()
    for name, source in splits:
        outputs, targets = [], []
        for x, y in source.epoch(0):
            out = net(x).float()
            outputs.append((out.softmax(-1) if classify else out).cpu())
            targets.append(y.cpu())
        trial.log_predictions(step, name, torch.cat(outputs), torch.cat(targets))
    net.train(was_training)


def _mixed_precision(dev: torch.device, amp: bool | None) -> tuple[Callable[[], Any], Any]:
    """(autocast context factory, grad scaler): bf16 where supported, fp16 with scaling otherwise."""
    use = (dev.type == "cuda") if amp is None else amp
    if not use or dev.type != "cuda":
        return contextlib.nullcontext, torch.amp.GradScaler("cuda", enabled=False)
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    return (lambda: torch.autocast("cuda", dtype=dtype)), scaler


def _clip(net: nn.Module, clip: float | None, step: int, log_every: int, inspecting: bool) -> float | None:
    """Clip to ``clip`` (the pre-clip norm comes free); else measure the norm only when it is logged."""
    if clip is not None:
        return float(torch.nn.utils.clip_grad_norm_(net.parameters(), clip))
    if inspecting or (log_every and step % log_every == 0):
        return float(torch.nn.utils.clip_grad_norm_(net.parameters(), math.inf))
    return None


@torch.no_grad()
def _log_init_loss(net: nn.Module, train: Batches, loss_fn: Callable[..., torch.Tensor], trial: Any) -> None:
    """Loss of the untrained model on the first batch, against ln(classes)."""
    x, y = next(iter(train.epoch(0)))
    out = net(x)
    value = float(loss_fn(out, y))
    trial.log(0, init_loss=value, init_loss_ratio=value / math.log(out.shape[-1]) if out.shape[-1] > 1 else math.nan)


@torch.no_grad()
def evaluate(model: nn.Module, data: Any, loss: Any = "cross_entropy", classify: bool | None = None,
             *, prefix: str = "") -> dict[str, float]:
    """Loss (and accuracy for a classifier) of ``model`` on ``data`` ((x, y) or a DataLoader)."""
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    source = data if isinstance(data, Batches) else batches(data, 4096, dev, shuffle=False, seed=0)
    loss_fn = _loss_fn(loss, 0.0) if not callable(loss) or isinstance(loss, str) else loss
    classify = (loss == "cross_entropy") if classify is None else classify
    loss_sum, correct, n = 0.0, 0, 0
    for x, y in source.epoch(0):
        logits = model(x)
        loss_sum += float(loss_fn(logits.float(), y)) * len(y)
        if classify:
            correct += int((logits.argmax(-1) == y).sum())
        n += len(y)
    model.train(was_training)
    out = {f"{prefix}loss": loss_sum / max(n, 1)}
    if classify:
        out[f"{prefix}acc"] = correct / max(n, 1)
    return out
