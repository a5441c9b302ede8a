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

from tuneloop._logged import summarize_rows
from tuneloop.torch._population._state import Population


class MemberInspector:
    """Histograms and update ratios of the members due for inspection at this step.

    Members placed alike in the blocks (every parameter at the same shape: all of an unpadded
    population) are read together: one gather per parameter, one batched summary of its rows
    (:func:`tuneloop._logged.summarize_rows`, equal to each row's own) and one norm per weight
    matrix for the update ratios, instead of a histogram and a copy per member and parameter."""

    def __init__(self) -> None:
        # per group of alike placed members: their indices, those past their first step, and the
        # weight matrices before the update ({name: (block, where, rows)})
        self._before: list[tuple[list[int], list[bool], dict[str, tuple[int, Any, torch.Tensor]]]] = []

    def before_update(self, pop: Population, grads: Sequence[torch.Tensor]) -> None:
        """After clipping, before the optimizer step: each due member's weights and gradients."""
        self._before = []  # a step that failed between the two calls leaves nothing for the next
        due = [j for j, m in enumerate(pop.members)
               if m.trial is not None and m.frozen is None and m.args["inspect_every"]
               and m.step % m.args["inspect_every"] == 0]
        placement = pop.model.placement
        groups: dict[str, list[int]] = {}
        for j in due:
            groups.setdefault(repr(placement[j]), []).append(j)
        for rows in groups.values():
            index = torch.tensor(rows, device=pop.model.blocks[0].device)
            named = list(pop.members[rows[0]].net.named_parameters())  # alike placed: alike named and shaped
            before: dict[str, tuple[int, Any, torch.Tensor]] = {}
            for (name, param), (k, where) in zip(named, placement[rows[0]]):
                if not param.requires_grad:
                    continue
                w = pop.model.blocks[k].index_select(0, index)[(slice(None), *where)]
                g = grads[k].index_select(0, index)[(slice(None), *where)]
                weights, gradients = summarize_rows(w.reshape(len(rows), -1)), summarize_rows(g.reshape(len(rows), -1))
                for i, j in enumerate(rows):
                    m = pop.members[j]
                    _log(m.trial, m.step, f"weight/{name}", weights[i], w[i])
                    _log(m.trial, m.step, f"grad/{name}", gradients[i], g[i])
                if w.dim() > 2:  # a weight matrix: its update ratio, as fit
                    before[name] = (k, where, w)
            # as fit: Adam's first update says nothing about the run
            self._before.append((rows, [pop.members[j].step > 0 for j in rows], before))

    def after_update(self, pop: Population) -> None:
        """After the optimizer step: each due member's update-to-weight ratios."""
        for rows, past_first, before in self._before:
            if not before or not any(past_first):
                continue
            index = torch.tensor(rows, device=pop.model.blocks[0].device)
            ratios: dict[str, list[float]] = {}
            for name, (k, where, w) in before.items():
                after = pop.model.blocks[k].index_select(0, index)[(slice(None), *where)]
                was, now = w.reshape(len(rows), -1), after.reshape(len(rows), -1)
                ratio = torch.linalg.vector_norm(now - was, dim=1) / torch.linalg.vector_norm(was, dim=1).clamp_min(1e-12)
                ratios[f"update_ratio/{name}"] = ratio.tolist()
            for i, j in enumerate(rows):
                if past_first[i]:
                    m = pop.members[j]
                    m.trial.log(m.step, **{key: values[i] for key, values in ratios.items()})
        self._before = []


def _log(trial: Any, step: int, name: str, summary: dict[str, Any], values: torch.Tensor) -> None:
    """One member's histogram: a tuneloop trial records the batch's summary of it as it is; another
    trial-like object (fit takes any) gets ``log_histogram`` with the member's own values."""
    record = getattr(trial, "_log_summary", None)
    if record is not None:
        record(step, name, summary)
    else:
        trial.log_histogram(step, name, values.clone())
