"""What ``fit``'s Inspector records, for members: every ``inspect_every`` steps each member's
weight and gradient histograms (``weight/NAME``, ``grad/NAME``, the gradient after clipping as in
``fit``) and the update-to-weight ratio of each weight matrix (``update_ratio/NAME``), under the
member's own parameter names and at its own shapes, so the trial page, the default alert rules and
``tuneloop show`` read a member as they read a sequential run.

Activation histograms and dead-ReLU fractions (``act/``, ``dead_relu/``) need hooks inside the
forward pass, which the stacked forward does not run module by module: members do not record them.
Steps without an inspection pay one comparison per member.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from tuneloop.torch._population._state import Population


class MemberInspector:
    """Histograms and update ratios of the members due for inspection at this step."""

    def __init__(self) -> None:
        self._due: list[int] = []
        self._before: dict[int, dict[str, torch.Tensor]] = {}

    def before_update(self, pop: Population, grads: Sequence[torch.Tensor]) -> None:
        """After clipping, before the optimizer step: each due member's weights and gradients."""
        self._due = [j for j, m in enumerate(pop.members)
                     if m.trial is not None and m.frozen is None and m.args["inspect_every"]
                     and m.step % m.args["inspect_every"] == 0]
        if not self._due:
            return
        for j in self._due:
            m = pop.members[j]
            named = list(m.net.named_parameters())  # the member's own names, in the order member() returns
            weights, grad_values = pop.model.member(j), pop.model.member(j, grads)
            before = {}
            for (name, param), w, g in zip(named, weights, grad_values):
                if not param.requires_grad:
                    continue
                m.trial.log_histogram(m.step, f"weight/{name}", w)
                m.trial.log_histogram(m.step, f"grad/{name}", g)
                if w.dim() > 1 and m.step > 0:  # as fit: Adam's first update says nothing about the run
                    before[name] = w
            self._before[j] = before

    def after_update(self, pop: Population) -> None:
        """After the optimizer step: each due member's update-to-weight ratios."""
        for j in self._due:
            m, before = pop.members[j], self._before.pop(j, {})
            if not before:
                continue
            after = dict(zip([n for n, _ in m.net.named_parameters()], pop.model.member(j)))
            ratios: dict[str, Any] = {f"update_ratio/{name}": float((after[name] - w).norm() / w.norm().clamp_min(1e-12))
                                      for name, w in before.items()}
            m.trial.log(m.step, **ratios)
        self._due = []
