"""Look inside a model while it trains: histograms and health numbers at an interval.

On an inspection step the Inspector records, per layer: weight and gradient histograms
(``weight/NAME``, ``grad/NAME``), output activation histograms (``act/MODULE``), the fraction of
zero outputs of each ReLU (``dead_relu/MODULE``) and the update-to-weight ratio of each weight
(``update_ratio/NAME``, ||w_after - w_before|| / ||w_before||). Hooks exist only during that
step, so the other steps pay nothing; the default rules (``tl.default_rules()``) watch these names.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

_LEAVES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.GRU, nn.LSTM, nn.RNN, nn.Embedding)
_RELUS = (nn.ReLU, nn.ReLU6)


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
                self.trial.log(self._step, **{f"dead_relu/{name}": float((out == 0).float().mean())})

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
            if p.dim() > 1:  # weights, not biases: their ratio is the one with a known healthy range
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
