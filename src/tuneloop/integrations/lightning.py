"""Tune a Lightning training script: add ``TuneloopCallback(trial)`` to the ``Trainer``.

    import lightning as L
    from tuneloop.integrations.lightning import TuneloopCallback

    def train(trial: tl.Trial) -> None:
        model = LitClassifier(lr=trial.params.lr)
        trainer = L.Trainer(max_epochs=trial.budget.epochs,
                            callbacks=[TuneloopCallback(trial, monitor="val_acc")])
        trainer.fit(model, datamodule=MyData())

The callback, at the end of each training epoch that ran a validation (never the sanity check):

- reports the epoch's metrics (``trainer.callback_metrics``: what ``EarlyStopping`` can monitor) to
  ``trial.report(epochs_done, ...)``; in a finalize run ``val_*`` names are reported as ``test_*``,
  since the validation loader then holds the test split (``trial.splits``);
- sets ``trainer.should_stop`` when the scheduler stops the trial, so ``fit`` returns and the trial
  ends *pruned*, not failed.

Each report also holds the cost metrics (``cost_metrics=False`` leaves them out), which a study can
take as objectives or constraints: ``params_m`` (the module's trainable parameters, in millions),
``train_time_s`` (seconds of training epochs so far, validation excluded; continued across
``sha``/``pbt`` checkpoints), ``epoch_time_s`` (the last epoch's) and ``latency_ms`` (milliseconds
per example of ``pl_module(x)``, eval mode, no gradients, warm, median of several passes, in the
module's own precision: no autocast), measured once on ``x``, the inputs of the first validation
batch (at most 256 examples). That needs batches shaped ``(x, y)`` or ``x`` and a module that
defines ``forward(x)``; otherwise ``latency_ms`` is left out (with a warning when ``forward(x)``
raises). A value the module logs under one of these names is reported instead of the measured one.

It also logs every per-step value Lightning sends to its loggers (every ``log_every_n_steps``) with
``trial.log`` as ``step/<name>``, through a logger added beside the user's own (TensorBoard, CSV...).
When the scheduler continues trials from checkpoints (``sha``, ``pbt``) it saves the model,
optimizer, LR-scheduler and loop state through the trial at the end of ``fit``, and restores them
when the trial starts from one: training goes on from that epoch up to ``max_epochs``.
"""

from __future__ import annotations

import time
import warnings
from typing import TYPE_CHECKING, Any

from tuneloop.errors import ConfigError


def _lightning() -> Any:
    """``lightning.pytorch``, or ``pytorch_lightning`` where only that package is installed."""
    import importlib

    for name in ("lightning.pytorch", "pytorch_lightning"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ConfigError("tuneloop.integrations.lightning needs Lightning: pip install 'tuneloop[lightning]'.")


if TYPE_CHECKING:
    import lightning.pytorch as pl

    from tuneloop.trial import Trial
else:
    pl = _lightning()

__all__ = ["TuneloopCallback"]

_FORMAT = "tuneloop.lightning/1"  # the shape of the state this module saves


class TuneloopCallback(pl.Callback):
    """Report to ``trial`` each validated epoch, stop the ``Trainer`` when the scheduler says so,
    log per-step values, and save/restore checkpoints for ``sha`` and ``pbt``.

    ``monitor`` names a value the module logs with ``self.log`` (the study's objective, usually):
    an epoch without it fails the trial with the names that were logged. ``cost_metrics``: report
    params_m, train_time_s, epoch_time_s and latency_ms too (see the module's docs).
    """

    def __init__(self, trial: Trial, monitor: str = "val_loss", cost_metrics: bool = True) -> None:
        if not isinstance(monitor, str) or not monitor:
            raise ConfigError(f"The 'monitor' argument of TuneloopCallback must be the name of a logged metric, "
                              f"e.g. 'val_loss'. Got {monitor!r} instead.")
        self.trial = trial
        self.monitor = monitor
        self._logger = _TrialLogger(self)
        self._resume: Any = None
        self._loaded = False
        self._configured: list[list[dict[str, Any]]] = []
        self._in_epoch = False  # inside a training epoch's steps...
        self._in_validation = False  # ...and not in a validation: what our logger receives then is per step
        self._validated = False  # a validation (not the sanity check) ran during this epoch
        from tuneloop.torch._cost import TrainClock

        self.cost_metrics = cost_metrics
        self._clock = TrainClock()
        self._validation_s = 0.0  # seconds of validation inside this epoch: not training time
        self._validation_since: float | None = None
        self._inputs: Any = None  # the first validation batch's inputs, for latency_ms
        self._inputs_seen = False
        self._latency: float | None = None

    # -- setting up: our logger beside the user's, the checkpoint read before anything trains

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        if self._logger not in trainer.loggers:
            self._logger.root = trainer.default_root_dir  # so log_dir and checkpoint folders stay where they were
            trainer.loggers = [*trainer.loggers, self._logger]
        if not self._loaded:  # the trial's first fit starts from its checkpoint; a later fit goes on from there
            self._loaded = True
            found = self.trial.load_checkpoint()  # a refused (untrusted) file fails the trial here, before training
            self._resume = None if found is None else found[1]

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # what configure_optimizers gave this trial: PBT's explored values are applied over a restored state
        self._configured = [_hyperparameters(opt) for opt in trainer.optimizers]
        if self._resume is not None:
            if trainer.ckpt_path:
                raise ConfigError(f"This trial continues from a tuneloop checkpoint (sha or pbt), which "
                                  f"TuneloopCallback restores itself; fit was also given ckpt_path="
                                  f"{str(trainer.ckpt_path)!r:.80}. Leave ckpt_path out under these schedulers.")
            _restore(trainer, self._resume, self._configured)
            from tuneloop.torch._cost import seconds

            self._clock.total = seconds(self._resume.get("train_time_s"))  # the training that led here
            self._resume = None

    # -- each epoch

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._in_epoch, self._validated = True, False
        self._validation_s = 0.0
        self._clock.start()

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._in_validation = True
        self._validation_since = time.perf_counter()

    def on_validation_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                                  batch_idx: int, dataloader_idx: int = 0) -> None:
        if self.cost_metrics and not self._inputs_seen:
            from tuneloop.torch._cost import first_inputs

            self._inputs_seen = True
            if type(pl_module).forward is not pl.LightningModule.forward:  # no forward: nothing to time
                self._inputs = first_inputs(batch)  # None unless (x, y) or x

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._in_validation = False
        if self._in_epoch and self._validation_since is not None:
            self._validation_s += time.perf_counter() - self._validation_since
        self._validation_since = None
        if not trainer.sanity_checking:
            self._validated = True

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._in_epoch = False  # the epoch-level values Lightning logs next are in this report
        self._clock.stop(pl_module.device, excluded=self._validation_s)
        if self._validated or not trainer.enable_validation:
            self._report(trainer)

    def _costs(self, pl_module: pl.LightningModule) -> dict[str, float]:
        """params_m, train_time_s, epoch_time_s and (measured at the first report) latency_ms."""
        from tuneloop.torch._cost import latency_ms, params_m

        if self._latency is None and self._inputs is not None:
            x, self._inputs = self._inputs.to(pl_module.device), None
            try:
                self._latency = latency_ms(pl_module, x)
            except Exception as exc:  # noqa: BLE001 - a module whose forward is not model(x) still trains
                warnings.warn(f"TuneloopCallback: latency_ms is not measured: pl_module(x) on the first validation "
                              f"batch's inputs raised {type(exc).__name__}: {str(exc)[:200]}. Let forward(x) take "
                              f"those inputs to measure it, or pass cost_metrics=False.", stacklevel=2)
        out = {"params_m": params_m(pl_module), **self._clock.metrics()}
        return out if self._latency is None else {**out, "latency_ms": self._latency}

    def _report(self, trainer: pl.Trainer) -> None:
        metrics = trainer.callback_metrics
        if self.monitor not in metrics:
            names = sorted(metrics)
            logged = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
            raise ConfigError(f"TuneloopCallback(monitor={self.monitor!r}): the LightningModule did not log "
                              f"{self.monitor!r}; it logged: {logged or 'nothing'}. Log it with self.log("
                              f"{self.monitor!r}, value) in validation_step, or monitor one of those.")
        stop = False
        if trainer.is_global_zero:
            values = _epoch_values(metrics)
            if self.cost_metrics:  # what the module logs under these names wins
                values = {**self._costs(trainer.lightning_module), **values}
            if self.trial.phase == "final":  # the validation loader holds the test split: name it so
                values = {("test_" + k[4:] if k.startswith("val_") else k): v for k, v in values.items()}
            self.trial.report(trainer.current_epoch + 1, **values)
            stop = self.trial.should_stop()
        if trainer.strategy.reduce_boolean_decision(stop, all=False):
            trainer.should_stop = True

    # -- the end: a checkpoint another trial (or this configuration's next segment) continues from

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.trial.checkpointing or trainer.current_epoch == 0:
            return
        state = _plain({**_state(trainer, self._configured), "train_time_s": self._clock.total})
        if trainer.is_global_zero:
            self.trial.save_checkpoint(trainer.current_epoch, state)


class _TrialLogger(pl.loggers.Logger):
    """Receives what Lightning sends its loggers and logs the per-step part with ``trial.log``.

    Epoch-level values (sent at validation end and after the epoch ends) are left to the report,
    so nothing is stored twice. Named like no logger at all (empty name and version, the trainer's
    own folder), so a trainer without loggers keeps its folders when this one is added."""

    def __init__(self, callback: TuneloopCallback) -> None:
        super().__init__()
        self._callback = callback
        self.root: str | None = None

    @property
    def name(self) -> str:
        return ""

    @property
    def version(self) -> str:
        return ""

    @property
    def save_dir(self) -> str | None:
        return self.root

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """The trial already holds its parameters."""

    @pl.utilities.rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if not self._callback._in_epoch or self._callback._in_validation:
            return
        values = {f"step/{k.removesuffix('_step')}": v for k, v in metrics.items()
                  if k != "epoch" and isinstance(v, (int, float)) and not isinstance(v, bool)}
        if values:
            self._callback.trial.log(max(int(step or 0), 0), **values)


def _epoch_values(metrics: dict[str, Any]) -> dict[str, float]:
    """The scalars of ``trainer.callback_metrics``, without Lightning's ``_step``/``_epoch`` copies
    of a value logged with both ``on_step`` and ``on_epoch`` (its own name holds the epoch value)."""
    values = {}
    for name, value in metrics.items():
        for suffix in ("_step", "_epoch"):
            if name.endswith(suffix) and name[: -len(suffix)] in metrics:
                break
        else:
            number = _scalar(value)
            if number is not None:
                values[name] = number
    return values


def _scalar(value: Any) -> float | None:
    if hasattr(value, "numel"):
        return float(value.item()) if value.numel() == 1 else None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _hyperparameters(optimizer: Any) -> list[dict[str, Any]]:
    """Each parameter group's settings (lr, weight decay, betas...), without the parameters."""
    return [{k: v for k, v in group.items() if k not in ("params", "initial_lr")} for group in optimizer.param_groups]


def _state(trainer: pl.Trainer, configured: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """What a continued trial needs, from Lightning's public pieces (the same ones a Lightning
    checkpoint holds, less the hyper-parameters and callback states, which may be any object)."""
    return {
        "format": _FORMAT,
        "state_dict": trainer.strategy.lightning_module_state_dict(),
        "optimizer_states": [trainer.strategy.optimizer_state(opt) for opt in trainer.optimizers],
        "lr_schedulers": [config.scheduler.state_dict() for config in trainer.lr_scheduler_configs],
        "precision": trainer.precision_plugin.state_dict(),
        "loops": {"fit_loop": trainer.fit_loop.state_dict()},
        "configured": configured,
        "epoch": trainer.current_epoch,
        "global_step": trainer.global_step,
    }


def _restore(trainer: pl.Trainer, state: Any, configured: list[list[dict[str, Any]]]) -> None:
    """Load a state :func:`_state` saved into a trainer that has just set up its model and optimizers
    (``on_fit_start``, where Lightning itself restores a ``ckpt_path``), then apply this trial's
    own optimizer settings where PBT changed them."""
    fields = {"state_dict": dict, "optimizer_states": list, "lr_schedulers": list, "loops": dict, "configured": list}
    wrong = [k for k, kind in fields.items() if not isinstance(state, dict) or not isinstance(state.get(k), kind)]
    if wrong or state.get("format") != _FORMAT:
        raise ConfigError(f"The checkpoint this trial continues from is not one TuneloopCallback saved (bad or "
                          f"missing: {', '.join(wrong) or 'format'}). Rerun the trial that saved it, or start the "
                          "study afresh.")
    counts = (len(state["optimizer_states"]), len(state["lr_schedulers"]))
    if counts != (len(trainer.optimizers), len(trainer.lr_scheduler_configs)):
        raise ConfigError(f"The checkpoint this trial continues from has {counts[0]} optimizer(s) and {counts[1]} LR "
                          f"scheduler(s); configure_optimizers now returns {len(trainer.optimizers)} and "
                          f"{len(trainer.lr_scheduler_configs)}. Keep them the same across the trials of a study.")
    module = trainer.lightning_module
    trainer.strategy.load_model_state_dict(state, strict=module.strict_loading)
    trainer.strategy.load_optimizer_state_dict(state)
    for config, saved in zip(trainer.lr_scheduler_configs, state["lr_schedulers"]):
        config.scheduler.load_state_dict(saved)
    if state.get("precision"):
        trainer.precision_plugin.load_state_dict(state["precision"])
    trainer.fit_loop.load_state_dict(state["loops"]["fit_loop"])
    _apply_explored(trainer, state["configured"], configured)


def _apply_explored(trainer: pl.Trainer, saved: list[Any], own: list[list[dict[str, Any]]]) -> None:
    """Where this trial configured a setting differently from the trial that saved the state (PBT's
    explore step), use this trial's: a changed learning rate scales the scheduled one (and the
    schedule's base) by the same factor, so the schedule's progress is kept."""
    for opt, saved_groups, own_groups in zip(trainer.optimizers, saved, own):
        schedulers = [c.scheduler for c in trainer.lr_scheduler_configs if c.scheduler.optimizer is opt]
        for j, (group, before, now) in enumerate(zip(opt.param_groups, saved_groups, own_groups)):
            for key, value in now.items():
                if not isinstance(before, dict) or key not in before or before[key] == value:
                    continue
                old = before[key]
                if key == "lr" and isinstance(old, (int, float)) and isinstance(value, (int, float)) and old > 0:
                    factor = value / old
                    group["lr"] *= factor
                    if "initial_lr" in group:
                        group["initial_lr"] *= factor
                    for scheduler in schedulers:
                        base = getattr(scheduler, "base_lrs", None)
                        if isinstance(base, list) and j < len(base):
                            base[j] *= factor
                else:
                    group[key] = value


_LEAVES = (type(None), bool, int, float, complex, str, bytes)
_OMIT = object()


def _plain(state: Any) -> Any:
    """``state`` as tensors (on the CPU, so any worker loads it) and plain data, which is all a
    checkpoint may hold; parts of any other type are left out, with a warning naming them."""
    import torch

    left_out: list[str] = []

    def convert(value: Any, where: str) -> Any:
        if isinstance(value, torch.Tensor):
            return value.detach().cpu()
        if type(value) in _LEAVES or isinstance(value, (torch.dtype, torch.device, torch.Size)):
            return value
        if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy scalars
            return value.item()
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                if type(k) not in _LEAVES:
                    left_out.append(f"{where}[{k!r:.40}]")
                    continue
                converted = convert(v, f"{where}[{k!r:.40}]")
                if converted is not _OMIT:
                    out[k] = converted
            return out
        if isinstance(value, (list, tuple)):
            items = [c for i, v in enumerate(value) if (c := convert(v, f"{where}[{i}]")) is not _OMIT]
            return tuple(items) if isinstance(value, tuple) else items
        left_out.append(f"{where} ({type(value).__name__})")
        return _OMIT

    out = convert(state, "state")
    if left_out:
        warnings.warn(f"TuneloopCallback: left out of the checkpoint (not tensors or plain data): "
                      f"{', '.join(left_out[:5])}{' ...' if len(left_out) > 5 else ''}", stacklevel=2)
    return out
