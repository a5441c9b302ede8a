"""A Hugging Face ``Trainer``'s state as a tuneloop checkpoint, and back as a Trainer checkpoint folder.

Saved with the trial (plain data: ``torch.load(weights_only=True)`` reads it): the model's and the
optimizer's state dicts, the learning-rate scheduler's, the Trainer's position (global step, epoch,
log history) and the learning rate and weight decay it trained with. To continue, the state is
written as the folder ``trainer.train(resume_from_checkpoint=...)`` reads, so the Trainer restores
weights, optimizer, schedule and data position by its own code. The stored file is untrusted: every
field is checked before anything is written, and only tensors and plain data are.
"""

from __future__ import annotations

import json
import os
from functools import partial
from typing import Any

from tuneloop.errors import ConfigError

FORMAT = "tuneloop.transformers/1"
# the Trainer's position: what resuming needs, nothing that names a path or a process
_POSITION: dict[str, type | tuple[type, ...]] = {
    "epoch": (int, float), "global_step": int, "max_steps": int, "logging_steps": (int, float),
    "eval_steps": (int, float), "save_steps": (int, float), "train_batch_size": (int, type(None)),
    "num_train_epochs": (int, float), "num_input_tokens_seen": int, "total_flos": (int, float),
    "log_history": list, "best_metric": (int, float, type(None)), "best_global_step": (int, type(None)),
}


def checkpoint_state(args: Any, state: Any, model: Any, optimizer: Any, lr_scheduler: Any) -> dict[str, Any]:
    """What ``trial.save_checkpoint`` stores when training ends (tensors moved to the CPU, so any
    worker can load them)."""
    position = {name: getattr(state, name) for name in _POSITION if hasattr(state, name)}
    return {
        "format": FORMAT,
        "model": _cpu(model.state_dict()),
        "optimizer": None if optimizer is None else _cpu(optimizer.state_dict()),
        "scheduler": None if lr_scheduler is None else _cpu(lr_scheduler.state_dict()),
        "trainer_state": position,
        "learning_rate": float(args.learning_rate),
        "weight_decay": float(args.weight_decay),
    }


def write_trainer_checkpoint(state: Any, folder: str) -> dict[str, Any]:
    """Write ``state`` (what :func:`checkpoint_state` saved) into ``folder`` as a Trainer
    checkpoint; return it, checked. A file of another shape is refused with ConfigError."""
    import torch
    from transformers.trainer import OPTIMIZER_NAME, SCHEDULER_NAME, TRAINER_STATE_NAME
    from transformers.utils import WEIGHTS_NAME

    checked = _checked(state)
    torch.save(checked["model"], os.path.join(folder, WEIGHTS_NAME))
    if checked["optimizer"] is not None and checked["scheduler"] is not None:
        torch.save(checked["optimizer"], os.path.join(folder, OPTIMIZER_NAME))
        torch.save(checked["scheduler"], os.path.join(folder, SCHEDULER_NAME))
    with open(os.path.join(folder, TRAINER_STATE_NAME), "w", encoding="utf-8") as f:
        json.dump(checked["trainer_state"], f)
    return checked


def apply_hyperparameters(args: Any, optimizer: Any, lr_scheduler: Any, saved: dict[str, Any]) -> None:
    """After the Trainer restored the optimizer and schedule of the checkpoint, use this trial's
    learning rate and weight decay (PBT's explore changes them): every group's rate is scaled by
    new/old, so groups with rates of their own keep their ratios; groups that decayed with the old
    weight decay take the new one (a checkpoint trained without decay cannot tell its groups apart,
    so it keeps none)."""
    if optimizer is None:
        return
    old_lr, old_wd = saved["learning_rate"], saved["weight_decay"]
    scale = args.learning_rate / old_lr if old_lr > 0 else 1.0
    for group in optimizer.param_groups:
        for key in ("lr", "initial_lr"):
            if key in group:
                group[key] *= scale
        if old_wd != 0 and group.get("weight_decay") == old_wd:
            group["weight_decay"] = args.weight_decay
    if lr_scheduler is not None and hasattr(lr_scheduler, "base_lrs"):
        lr_scheduler.base_lrs = [lr * scale for lr in lr_scheduler.base_lrs]


def check_same_pace(args: Any, state: Any, saved: dict[str, Any]) -> None:
    """The Trainer resumes at the checkpoint's step count: with another number of optimizer steps per
    epoch (PBT changed the batch size or gradient accumulation) that step would be another epoch,
    and the trial would train and report the wrong ones. Refused with the fix."""
    position = saved["trainer_state"]
    if args.max_steps > 0 or not state.num_train_epochs or not position.get("num_train_epochs"):
        return
    before = position.get("max_steps", 0) / position["num_train_epochs"]
    now = state.max_steps / state.num_train_epochs
    if round(before) != round(now):
        raise ConfigError(
            f"This trial continues a checkpoint trained at {round(before)} optimizer steps per epoch, but trains at "
            f"{round(now)} (another batch size or gradient accumulation), so the Trainer would resume in the wrong "
            "epoch. Keep those fixed when continuing from checkpoints (pbt): tl.Study(..., fixed={...}) or "
            "leave them out of the space.")


def continue_schedule(args: Any, state: Any, lr_scheduler: Any, schedule_epochs: int) -> None:
    """Stretch the Trainer's learning-rate schedule over ``schedule_epochs`` (the whole run that
    ``sha``/``pbt`` train in segments), so each segment continues one curve instead of decaying to
    zero at its own end. Applies to the Trainer's schedules (a ``LambdaLR`` of a ``partial`` with
    ``num_training_steps``); others are left as they are."""
    import torch

    if (not isinstance(lr_scheduler, torch.optim.lr_scheduler.LambdaLR) or args.max_steps > 0
            or not state.max_steps or not state.num_train_epochs):
        return
    horizon = max(int(state.max_steps), round(state.max_steps / state.num_train_epochs * schedule_epochs))
    lambdas = lr_scheduler.lr_lambdas
    for i, fn in enumerate(lambdas):
        if isinstance(fn, partial) and "num_training_steps" in fn.keywords:
            lambdas[i] = partial(fn.func, *fn.args, **{**fn.keywords, "num_training_steps": horizon})
    for group, base, fn in zip(lr_scheduler.optimizer.param_groups, lr_scheduler.base_lrs, lambdas):
        group["lr"] = base * fn(lr_scheduler.last_epoch)
    # get_last_lr() (what the Trainer logs as learning_rate) reads this until the next step
    lr_scheduler._last_lr = [group["lr"] for group in lr_scheduler.optimizer.param_groups]


def _checked(state: Any) -> dict[str, Any]:
    import torch

    def bad(what: str) -> ConfigError:
        return ConfigError(f"The checkpoint this trial continues from is not one TuneloopCallback saved ({what}). "
                           "Rerun the trial that saved it, or start the study afresh.")

    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise bad(f"its format is not {FORMAT!r}")
    model = state.get("model")
    if not isinstance(model, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in model.items()):
        raise bad("model: not a state dict of named tensors")
    optimizer, scheduler = state.get("optimizer"), state.get("scheduler")
    if optimizer is not None and not (isinstance(optimizer, dict) and isinstance(optimizer.get("param_groups"), list)
                                      and isinstance(optimizer.get("state"), dict)):
        raise bad("optimizer: not an optimizer state dict")
    if scheduler is not None and not isinstance(scheduler, dict):
        raise bad("scheduler: not a scheduler state dict")
    for name in ("learning_rate", "weight_decay"):
        value = state.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise bad(f"{name}: not a non-negative number")
    position = state.get("trainer_state")
    if not isinstance(position, dict):
        raise bad("trainer_state: not a dict")
    kept: dict[str, Any] = {}
    for name, kinds in _POSITION.items():
        if name in position:
            value = position[name]
            if isinstance(value, bool) or not isinstance(value, kinds):
                raise bad(f"trainer_state[{name!r}]: {type(value).__name__}")
            kept[name] = value
    if not isinstance(kept.get("global_step"), int) or kept["global_step"] < 0:
        raise bad("trainer_state['global_step']: missing or negative")
    try:
        json.dumps(kept, allow_nan=True)
    except (TypeError, ValueError, RecursionError):
        raise bad("trainer_state: not JSON data") from None
    return {**state, "trainer_state": kept}


def _cpu(value: Any) -> Any:
    """``value`` with every tensor on the CPU (dicts, lists and tuples rebuilt, the rest as is)."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return type(value)((k, _cpu(v)) for k, v in value.items())  # an OrderedDict stays one
    if isinstance(value, (list, tuple)):
        return type(value)(_cpu(v) for v in value)
    return value
