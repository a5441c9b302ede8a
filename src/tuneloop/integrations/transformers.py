"""Tune a Hugging Face ``Trainer`` with tuneloop: add one callback to the Trainer you already have.

    from tuneloop.integrations.transformers import TuneloopCallback

    def train(trial: tl.Trial) -> None:
        args = TrainingArguments(..., learning_rate=trial.params.lr, num_train_epochs=trial.budget.epochs,
                                 eval_strategy="epoch")
        callback = TuneloopCallback(trial)
        trainer = Trainer(model=model, args=args, ..., callbacks=[callback])
        trainer.train(resume_from_checkpoint=callback.resume_from())  # plain trainer.train() unless sha/pbt

    study = tl.Study("my-model", space, train, metric="eval_loss", mode="min", budget={"epochs": 10},
                     scheduler="asha")

Each evaluation's metrics are reported under the Trainer's own names (``eval_loss``,
``eval_accuracy``: name the study's metric the same way); when the scheduler stops the trial, the
callback sets ``control.should_training_stop``, ``trainer.train()`` returns, and the trial ends
*pruned*. Training logs (``loss``, ``learning_rate``, ``grad_norm``) are mirrored with
``trial.log``. Under ``sha`` and ``pbt`` the model, optimizer and scheduler state are saved with
the trial when training ends, and :meth:`TuneloopCallback.resume_from` turns the checkpoint a
trial continues from back into a Trainer checkpoint folder.

Each report also holds the cost metrics (``cost_metrics=False`` leaves them out): ``params_m`` (the
model's trainable parameters, in millions), ``train_time_s`` (seconds since training began, less
the evaluations' own ``*_runtime`` and this measuring; not carried across ``sha``/``pbt``
checkpoints), ``epoch_time_s`` (the last finished epoch's, measured the same way; absent until one
finished) and ``latency_ms``: milliseconds per example of ``model(**batch)`` on the first batch of
the evaluation set, at the Trainer's evaluation batch size, collated by its own collator, without
the labels, in eval mode under ``torch.no_grad``, warm, median of several passes; measured once, at
the first evaluation, and left out (with a warning) if that call fails.

``Trainer.hyperparameter_search`` cannot take another backend: it resolves ``backend`` through
the closed enum ``HPSearchBackend`` (optuna, ray, wandb) and applies a trial's parameters only for
those three. :func:`hyperparameter_search` is the same call with tuneloop behind it.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from typing import Any

from tuneloop.errors import ConfigError

try:
    from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
except ImportError:  # the message names the extra: the module is imported by user code, not by tuneloop
    raise ConfigError("tuneloop.integrations.transformers needs Hugging Face transformers: "
                      "pip install 'tuneloop[transformers]'.") from None

from tuneloop.integrations._hf_checkpoint import (
    apply_hyperparameters,
    check_same_pace,
    checkpoint_state,
    continue_schedule,
    write_trainer_checkpoint,
)
from tuneloop.integrations._hf_search import hyperparameter_search

__all__ = ["TuneloopCallback", "hyperparameter_search"]

# the Trainer's speed figures (eval_runtime, train_samples_per_second, ...) and its epoch counter: not
# results to compare trials by (tuneloop times each trial itself), so neither reported nor logged
_LEFT_OUT_SUFFIXES = ("_runtime", "_per_second", "_preparation_time")
_LEFT_OUT = {"epoch", "total_flos"}


class TuneloopCallback(TrainerCallback):
    """Reports a ``Trainer``'s evaluations to ``trial`` and stops training when the trial must stop.

    ``metric``: the evaluation metric the study optimizes, as the Trainer names it (``"eval_loss"``;
    ``"loss"`` means the same, as in ``metric_for_best_model``); default: ``args.metric_for_best_model``
    when set. When given, the first evaluation that lacks it fails the trial with the metrics it
    has, instead of a trial that trains to the end without feeding the scheduler.

    The step of a report is the epoch (1, 2, ...) when evaluating every epoch
    (``eval_strategy="epoch"``), so it counts in the unit of ``trial.budget.epochs`` and of the
    schedulers' ``min_resource``; otherwise it is ``state.global_step``. Logs use the global step.

    ``cost_metrics``: report params_m, train_time_s, epoch_time_s and latency_ms with each
    evaluation (see the module's docs).
    """

    def __init__(self, trial: Any, metric: str | None = None, cost_metrics: bool = True) -> None:
        if not all(callable(getattr(trial, name, None)) for name in ("report", "should_stop", "log")):
            raise ConfigError(f"TuneloopCallback needs the tl.Trial your trial function receives: "
                              f"TuneloopCallback(trial). Got {type(trial).__name__} instead.")
        if metric is not None and (not isinstance(metric, str) or not metric):
            raise ConfigError(f"The 'metric' argument of TuneloopCallback must be the name of an evaluation "
                              f"metric, e.g. 'eval_loss'. Got {metric!r} instead.")
        self.trial = trial
        self.metric = metric
        self.stopped = False  # True once this callback told the Trainer to stop
        self.reported = False  # True once an evaluation reached the trial
        self._checked = False
        self._resumed: dict[str, Any] | None = None
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self.cost_metrics = cost_metrics
        self._began: float | None = None  # when training began...
        self._ended: float | None = None  # ...and ended (a later trainer.evaluate() adds no training time)
        self._excluded = 0.0  # seconds in that span that were not training: evaluations, our measuring
        self._epoch: tuple[float, float] | None = None  # (start, excluded then) of the running epoch
        self._epoch_s: float | None = None
        self._latency: float | None = None
        self._latency_tried = False

    # -- what the trial function calls ------------------------------------------------------
    def resume_from(self) -> str | None:
        """The folder for ``trainer.train(resume_from_checkpoint=...)``: the checkpoint this trial
        continues from (``sha`` promoting it, ``pbt`` exploiting a better member) written as a
        Trainer checkpoint, so the Trainer restores weights, optimizer, schedule and position
        itself; None for a fresh start. The folder is removed when training ends."""
        load = getattr(self.trial, "load_checkpoint", None)
        found = load() if callable(load) else None
        if found is None:
            return None
        self._cleanup()
        self._folder = tempfile.TemporaryDirectory(prefix="tuneloop-resume-")
        self._resumed = write_trainer_checkpoint(found[1], self._folder.name)
        return self._folder.name

    # -- the Trainer's events ---------------------------------------------------------------
    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       optimizer: Any = None, lr_scheduler: Any = None, **kwargs: Any) -> None:
        if self._resumed is not None:  # PBT may have changed this trial's learning rate or weight decay
            check_same_pace(args, state, self._resumed)
            apply_hyperparameters(args, optimizer, lr_scheduler, self._resumed)
        schedule_epochs = _budget(self.trial).get("schedule_epochs")
        if schedule_epochs is not None:  # sha/pbt segments: one learning-rate curve across all of them
            continue_schedule(args, state, lr_scheduler, int(schedule_epochs))
        self._began, self._ended, self._excluded = time.perf_counter(), None, 0.0

    def on_epoch_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       **kwargs: Any) -> None:
        self._epoch = (time.perf_counter(), self._excluded)

    def on_epoch_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                     model: Any = None, **kwargs: Any) -> None:
        if self._epoch is not None:
            _synchronize(model)
            start, excluded = self._epoch
            self._epoch_s = max(time.perf_counter() - start - (self._excluded - excluded), 0.0)
            self._epoch = None

    def on_evaluate(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    metrics: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        values = _numbers(metrics)
        if not values:
            return
        self._check_metric(args, values)
        if self.cost_metrics:  # what compute_metrics returns under these names wins
            self._excluded += sum(float(v) for k, v in (metrics or {}).items()
                                  if k.endswith("_runtime") and k != "train_runtime" and _is_number(v))
            values = {**values, **{k: v for k, v in self._costs(args, kwargs).items() if k not in values}}
        self.trial.report(self._step(args, state), **values)
        self.reported = True
        self._obey(control)

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or not logs or _is_evaluation(logs):
            return  # an evaluation's metrics are reported by on_evaluate
        values = _numbers(logs)
        if values:
            self.trial.log(int(state.global_step), **values)
        self._obey(control)  # an alert rule (a NaN loss) may have stopped the trial between evaluations

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                     model: Any = None, optimizer: Any = None, lr_scheduler: Any = None, **kwargs: Any) -> None:
        self._ended = time.perf_counter()
        self._cleanup()
        if getattr(self.trial, "checkpointing", False) and state.is_world_process_zero and model is not None:
            self.trial.save_checkpoint(self._step(args, state),
                                       checkpoint_state(args, state, model, optimizer, lr_scheduler))

    # -- helpers ------------------------------------------------------------------------------
    def _costs(self, args: TrainingArguments, events: dict[str, Any]) -> dict[str, float]:
        """params_m, train_time_s, epoch_time_s and latency_ms (measured at the first evaluation)."""
        from tuneloop.torch._cost import params_m

        model = events.get("model")
        out: dict[str, float] = {}
        if model is not None and hasattr(model, "parameters"):
            out["params_m"] = params_m(model)
            if not self._latency_tried:
                self._latency_tried = True
                start = time.perf_counter()
                self._latency = _latency(model, events.get("eval_dataloader"), args)
                self._excluded += time.perf_counter() - start
        if self._began is not None:
            out["train_time_s"] = max((self._ended or time.perf_counter()) - self._began - self._excluded, 0.0)
        if self._epoch_s is not None:
            out["epoch_time_s"] = self._epoch_s
        if self._latency is not None:
            out["latency_ms"] = self._latency
        return out

    def _obey(self, control: TrainerControl) -> None:
        if self.trial.should_stop():
            control.should_training_stop = True
            self.stopped = True

    def _step(self, args: TrainingArguments, state: TrainerState) -> int:
        strategy = getattr(args, "eval_strategy", None) or getattr(args, "evaluation_strategy", None)
        if getattr(strategy, "value", strategy) == "epoch" and state.epoch is not None:
            return max(0, round(state.epoch))
        return int(state.global_step)

    def _check_metric(self, args: TrainingArguments, values: dict[str, Any]) -> None:
        """Once, on the first evaluation of the Trainer's own eval set (keys ``eval_*``)."""
        wanted = self.metric or getattr(args, "metric_for_best_model", None)
        if self._checked or not wanted or not any(k.startswith("eval_") for k in values):
            return
        self._checked = True
        if wanted not in values and f"eval_{wanted}" not in values:
            raise ConfigError(
                f"TuneloopCallback: the Trainer's evaluation has no metric {wanted!r}; it has "
                f"{', '.join(sorted(values))}. Compute it with Trainer(compute_metrics=...) or optimize one of "
                f"these (tl.Study(metric=...) and TuneloopCallback(trial, metric=...)).")

    def _cleanup(self) -> None:
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None


_LABELS = ("labels", "label", "label_ids")


def _latency(model: Any, loader: Any, args: TrainingArguments) -> float | None:
    """Milliseconds per example of ``model(**batch)`` on the evaluation set's first batch, or None
    (with a warning) when there is no such batch or the model refuses it. The batch comes from a
    plain DataLoader over the evaluation loader's dataset and collator: iterating the Trainer's own
    loader part way would leave its state (accelerate's) mid-epoch."""
    import torch

    from tuneloop.torch._cost import latency_ms

    dataset, collate = getattr(loader, "dataset", None), getattr(loader, "collate_fn", None)
    if dataset is None:
        return None
    try:
        plain = torch.utils.data.DataLoader(dataset, batch_size=max(int(args.eval_batch_size), 1), collate_fn=collate)
        batch = next(iter(plain))
        if not isinstance(batch, dict):
            raise TypeError(f"the collated batch is a {type(batch).__name__}, not a dict of model inputs")
        device = next(model.parameters()).device
        inputs = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items() if k not in _LABELS}
        return latency_ms(model, inputs, forward=lambda m, x: m(**x))
    except Exception as exc:  # noqa: BLE001 - a model we cannot time still trains and reports
        warnings.warn(f"TuneloopCallback: latency_ms is not measured: timing model(**batch) on the first evaluation "
                      f"batch failed with {type(exc).__name__}: {str(exc)[:200]}. Pass cost_metrics=False to "
                      "skip it.", stacklevel=2)
        return None


def _synchronize(model: Any) -> None:
    """Wait for the GPU's queued work, so a time read now includes it."""
    import torch

    param = next(model.parameters(), None) if model is not None and hasattr(model, "parameters") else None
    if param is not None and param.device.type == "cuda":
        torch.cuda.synchronize(param.device)


def _budget(trial: Any) -> dict[str, Any]:
    budget = getattr(trial, "budget", None)
    return dict(budget) if budget is not None else {}


def _numbers(values: dict[str, Any] | None) -> dict[str, Any]:
    """The numbers among ``values`` worth keeping (no speed figures, no epoch counter)."""
    return {k: v for k, v in (values or {}).items()
            if k not in _LEFT_OUT and not k.endswith(_LEFT_OUT_SUFFIXES) and _is_number(v)}


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    shape = getattr(value, "shape", None)  # numpy and torch scalars, not arrays
    return shape is not None and len(shape) == 0 and hasattr(value, "item")


def _is_evaluation(logs: dict[str, Any]) -> bool:
    """An evaluation's metrics, which the Trainer also logs: they carry ``<prefix>_runtime``."""
    return any(k.endswith("_runtime") and k != "train_runtime" for k in logs)
