"""Look inside a model while it trains: histograms and health numbers at an interval.

On an inspection step the Inspector records, per layer: weight and gradient histograms
(``weight/NAME``, ``grad/NAME``), output activation histograms (``act/MODULE``), the fraction of
units of each ReLU that output zero for the whole batch (``dead_relu/MODULE``) and the update-to-weight ratio of each weight
(``update_ratio/NAME``, ||w_after - w_before|| / ||w_before||). Hooks exist only during that
step, so the other steps pay nothing; the default rules (``tl.default_rules()``) watch these names.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

_LEAVES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.GRU, nn.LSTM, nn.RNN, nn.Embedding)
_RELUS = (nn.ReLU, nn.ReLU6)


def dead_fraction(out: torch.Tensor) -> float:
    """Fraction of units (features, channels) whose output is zero for every example of the
    batch: dead, not merely inactive on some inputs (about half of a fresh ReLU's outputs are 0)."""
    per_unit = out.reshape(out.shape[0], out.shape[1], -1) if out.dim() > 2 else out.reshape(out.shape[0], -1, 1)
    return float((per_unit == 0).all(dim=2).all(dim=0).float().mean())


class Inspector:
    """Records a model's weights, gradients, activations and updates every ``every`` steps."""

    def __init__(self, model: nn.Module, trial: Any, every: int) -> None:
        self.model, self.trial, self.every = model, trial, every
        self._handles: list[Any] = []
        self._acts: dict[str, torch.Tensor] = {}
        self._before: dict[str, torch.Tensor] = {}
        self._step = 0
        self.active = False

    def due(self, step: int) -> bool:
        return self.every > 0 and self.trial is not None and step % self.every == 0

    def before_forward(self, step: int) -> None:
        """On an inspection step, hook every leaf layer and ReLU to catch its output."""
        self.active = self.due(step)
        self._step = step
        if not self.active:
            return
        for name, module in self.model.named_modules():
            if isinstance(module, _LEAVES + _RELUS):
                self._handles.append(module.register_forward_hook(self._catch(name or type(module).__name__)))

    def _catch(self, name: str) -> Any:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            out = output[0] if isinstance(output, tuple) else output
            self._acts[name] = out.detach()
            if isinstance(module, _RELUS):
                self.trial.log(self._step, **{f"dead_relu/{name}": dead_fraction(out)})

        return hook

    def before_update(self, step: int) -> None:
        """After backward, before the optimizer step: histograms of weights, grads, activations."""
        if not self.active:
            return
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        for name, act in self._acts.items():
            self.trial.log_histogram(step, f"act/{name}", act)
        self._acts.clear()
        for name, p in self.model.named_parameters():
            if not p.requires_grad:
                continue
            self.trial.log_histogram(step, f"weight/{name}", p)
            self.trial.log_histogram(step, f"grad/{name}", p.grad if p.grad is not None else torch.zeros(0))
            # weights, not biases, have the known healthy ratio; step 0 is skipped because Adam's
            # first update is its largest relative one and says nothing about the run
            if p.dim() > 1 and step > 0:
                self._before[name] = p.detach().clone()

    def after_update(self, step: int) -> None:
        """After the optimizer step: the update-to-weight ratio of each weight matrix."""
        if not self.active:
            return
        ratios = {}
        for name, p in self.model.named_parameters():
            if name in self._before:
                before = self._before[name]
                ratios[f"update_ratio/{name}"] = float((p.detach() - before).norm() / before.norm().clamp_min(1e-12))
        self._before.clear()
        if ratios:
            self.trial.log(step, **ratios)
        self.active = False
