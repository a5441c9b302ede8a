"""What a hand-written training loop needs from its trial, one line each.

    def train(trial: tl.Trial) -> None:
        model, opt = build(trial.params)
        with tl.reporting(trial) as r:
            start = r.restore(model, opt)             # 0, or where a promoted trial stopped
            for epoch in range(start, trial.budget.epochs):
                for step, (x, y) in enumerate(loader):
                    loss = ...; loss.backward()
                    if step % 100 == 0:
                        r.log(step, train_loss=loss.item())
                        r.histograms(step, model)      # weight/<name> and grad/<name>
                    opt.step(); opt.zero_grad()
                r.report(epoch, val_acc=evaluate(model))
                if r.should_stop():
                    break
            r.save(epoch, model, opt)                 # only when sha or pbt continue trials

Leaving the block after the scheduler said stop raises :class:`~tuneloop.errors.TrialPruned`, so
the trial ends *pruned* and the code after the block (a test evaluation, a return value) is not
run for a trial that was stopped. A loop that ends early on its own (its own patience) is not
pruned: it completes with the last value it reported.
"""

from __future__ import annotations

from collections import OrderedDict
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from tuneloop.errors import ConfigError, TrialPruned

if TYPE_CHECKING:
    from torch import nn

    from tuneloop.trial import Trial

MAX_VALUES = 65_536  # elements of one tensor a histogram is drawn from; larger ones are sampled
_FORMAT = "tuneloop.reporting/1"  # marks checkpoints that Reporter.save wrote


def reporting(trial: Trial) -> Reporter:
    """A :class:`Reporter` for ``trial``; use it as ``with tl.reporting(trial) as r:``."""
    return Reporter(trial)


class Reporter:
    """Report, log, look inside the model and checkpoint from a plain PyTorch loop.

    Every method forwards to the :class:`~tuneloop.Trial`, so what a loop records lands in the
    store, the dashboard and any tracker mirror exactly as ``tuneloop.torch.fit``'s does."""

    def __init__(self, trial: Trial) -> None:
        self.trial = trial
        self._generator: Any = None  # a private RNG for sampling, so the user's random streams are untouched

    # -- the block ----------------------------------------------------------------------------
    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        # A stopped trial ends pruned even when its loop ran on or returned a value; an error in
        # the block is left to propagate (it fails the trial with its own traceback).
        if kind is None and self.trial.should_stop():
            raise TrialPruned(f"trial {self.trial.number} was stopped by the scheduler")

    # -- reporting ----------------------------------------------------------------------------
    def report(self, step: int, **metrics: Any) -> None:
        """Record ``metrics`` at ``step``; the study's objective goes to the scheduler."""
        self.trial.report(step, **metrics)

    def should_stop(self) -> bool:
        """True once the scheduler or an alert rule stopped this trial (or it diverged): break out."""
        return self.trial.should_stop()

    def log(self, step: int, **values: Any) -> None:
        """Record values at ``step`` without asking the scheduler (train loss, learning rate)."""
        self.trial.log(step, **values)

    def histograms(self, step: int, model: nn.Module, *, grads: bool = True, bins: int = 32,
                   max_values: int = MAX_VALUES) -> int:
        """Histograms of every trainable parameter (``weight/<name>``) and of its gradient
        (``grad/<name>``, when it has one) at ``step``; returns how many were logged.

        Call it after ``backward()`` and before ``optimizer.zero_grad()`` to see gradients. The
        names are ``tuneloop.torch.fit``'s, so the same alert rules and pages apply. A tensor
        larger than ``max_values`` elements is summarized from a random sample of that many (drawn
        on its device with a private generator, so training's random streams are unchanged), plus
        every non-finite value in it, so a NaN is never missed."""
        if isinstance(max_values, bool) or not isinstance(max_values, int) or max_values < 1:
            raise ConfigError(f"The 'max_values' argument of Reporter.histograms must be a positive int. "
                              f"Got {max_values!r} instead.")
        if not hasattr(model, "named_parameters"):
            raise ConfigError(f"Reporter.histograms takes a torch.nn.Module; got a {type(model).__name__}.")
        logged = 0
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            self.trial.log_histogram(step, f"weight/{name}", self._sample(p.detach(), max_values), bins=bins)
            logged += 1
            if grads and p.grad is not None:
                self.trial.log_histogram(step, f"grad/{name}", self._sample(p.grad.detach(), max_values), bins=bins)
                logged += 1
        return logged

    def _sample(self, t: Any, limit: int) -> Any:
        import torch

        flat = t.reshape(-1)
        if flat.numel() <= limit:
            return flat
        if self._generator is None or self._generator.device != flat.device:
            self._generator = torch.Generator(device=flat.device).manual_seed(self.trial.seed)
        picked = flat[torch.randint(flat.numel(), (limit,), device=flat.device, generator=self._generator)]
        finite = torch.isfinite(flat)
        if bool(finite.all()):
            return picked
        # the sample's own non-finite values are dropped and every one of the tensor's added (up to
        # `limit`), so the histogram counts them exactly and a single NaN is never missed
        return torch.cat([picked[torch.isfinite(picked)], flat[~finite][:limit]])

    # -- checkpoints ----------------------------------------------------------------------------
    def save(self, step: int, model: nn.Module, optimizer: Any = None, **more: Any) -> bool:
        """Save the model, the optimizer and any other objects with a ``state_dict`` (an LR
        scheduler, a GradScaler: ``lr_scheduler=sched``) as of ``step``, the last step done, so a
        later trial continues from it; returns whether it saved.

        It saves only when the scheduler continues trials from checkpoints (``sha``, ``pbt``:
        ``trial.checkpointing``); otherwise it does nothing, so a loop can always call it. Call it
        once after the loop: each save ships the whole state to the driver, which writes a file."""
        if not self.trial.checkpointing:
            return False
        import torch

        state = {
            "format": _FORMAT,
            "step": int(step),
            "params": self.trial.params.to_dict(),
            "model": _to_cpu(_state_of(model, "model")),
            "optimizer": None if optimizer is None else _to_cpu(_state_of(optimizer, "optimizer")),
            "more": {name: _to_cpu(_state_of(obj, name)) for name, obj in more.items()},
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }
        self.trial.save_checkpoint(step, state)
        return True

    def restore(self, model: nn.Module, optimizer: Any = None, **more: Any) -> int:
        """Load the checkpoint this trial continues from into ``model``, ``optimizer`` and
        ``more`` (the same names :meth:`save` was given) and return the step to start from: one
        after the saved step, or 0 for a fresh start. ``for epoch in range(r.restore(model, opt),
        trial.budget.epochs)`` then trains each epoch once across promotions.

        When PBT hands this trial another member's checkpoint with new hyperparameters, the
        optimizer keeps the hyperparameters it was built with (this trial's learning rate, weight
        decay...) and takes only its state (momentum buffers, step counts) from the checkpoint."""
        found = self.trial.load_checkpoint()
        if found is None:
            return 0
        state = _checked(found[1], optimizer is not None, set(more))
        model.load_state_dict(state["model"])
        if optimizer is not None:
            own = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
            optimizer.load_state_dict(state["optimizer"])
            if state["params"] != self.trial.params.to_dict():  # new hyperparameters: keep this trial's
                for group, hyper in zip(optimizer.param_groups, own):
                    group.update(hyper)
        for name, obj in more.items():
            obj.load_state_dict(state["more"][name])
        import torch

        torch.set_rng_state(state["rng"])
        cuda = state.get("cuda_rng") or []
        if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
        return int(state["step"]) + 1


def _state_of(obj: Any, name: str) -> Any:
    if not callable(getattr(obj, "state_dict", None)):
        raise ConfigError(f"Reporter.save: {name!r} is a {type(obj).__name__}, which has no state_dict(); pass a "
                          "model, an optimizer, an LR scheduler or another object with state_dict/load_state_dict.")
    return obj.state_dict()


def _to_cpu(state: Any) -> Any:
    """``state`` with every tensor on the CPU: the checkpoint loads on a machine or GPU other than
    the one that saved it (``load_state_dict`` moves tensors back to the parameters' device)."""
    if hasattr(state, "detach") and hasattr(state, "cpu"):
        return state.detach().cpu()
    if type(state) in (dict, OrderedDict):
        return type(state)((k, _to_cpu(v)) for k, v in state.items())
    if type(state) in (list, tuple):
        return type(state)(_to_cpu(v) for v in state)
    return state  # anything else is left for Trial.save_checkpoint to accept or refuse, naming it


def _checked(state: Any, optimizer: bool, more: set[str]) -> dict[str, Any]:
    """``state`` if it is a checkpoint :meth:`Reporter.save` wrote with what restore was given; the
    file is untrusted, so a wrong one fails the trial with its cause, not deep inside torch."""
    import torch

    if not isinstance(state, dict) or state.get("format") != _FORMAT:
        raise ConfigError("The checkpoint this trial continues from was not written by Reporter.save; restore "
                          "reads only those (a trial saved with trial.save_checkpoint reads its own with "
                          "trial.load_checkpoint()).")
    fields = {"step": int, "params": dict, "model": dict, "more": dict, "rng": torch.Tensor}
    wrong = [k for k, kind in fields.items() if not isinstance(state.get(k), kind)]
    if not wrong and (isinstance(state["step"], bool) or state["step"] < 0):
        wrong.append("step")
    if optimizer and not isinstance(state.get("optimizer"), dict):
        wrong.append("optimizer (restore was given one; save was not)")
    wrong += [f"more[{name!r}] (restore was given it; save was not)" for name in sorted(more)
              if not wrong and not isinstance(state["more"].get(name), dict)]
    if wrong:
        raise ConfigError(f"The checkpoint this trial continues from is missing or has a bad {', '.join(wrong)}; "
                          "pass restore the same objects as save, or start the study afresh.")
    return state
