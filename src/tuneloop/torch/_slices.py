"""Per-slice evaluation: how a classifier does on each class, or on any grouping you give."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from tuneloop.torch._data import batches


@torch.no_grad()
def evaluate_slices(model: nn.Module, data: Any, groups: Any = None) -> dict[str, dict[str, float]]:
    """{slice: {"acc", "loss", "n"}}: ``groups`` labels each example of ``data`` (in order);
    without it, slices are the true classes ("class 3")."""
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    source = batches(data, 4096, dev, shuffle=False, seed=0)
    outputs, ys = [], []
    for x, y in source.epoch(0):
        outputs.append(model(x).float().cpu())
        ys.append(y.cpu())
    model.train(was_training)
    return slices_of(torch.cat(outputs), torch.cat(ys), groups)


def slices_of(logits: torch.Tensor, targets: torch.Tensor, groups: Any = None) -> dict[str, dict[str, float]]:
    """:func:`evaluate_slices` from a classifier's outputs (logits) and the true classes."""
    logits, targets = logits.float().cpu(), targets.cpu()
    pred = logits.argmax(-1).numpy()
    loss = nn.functional.cross_entropy(logits, targets, reduction="none").numpy()
    y = targets.numpy()
    labels = np.asarray([f"class {c}" for c in y]) if groups is None else np.asarray([str(g) for g in groups])
    if len(labels) != len(y):
        from tuneloop.errors import ConfigError

        raise ConfigError(f"slices: got {len(labels)} group labels for {len(y)} examples; give one label per example.")
    out = {}
    for name in sorted(set(labels.tolist()), key=_natural):
        mask = labels == name
        out[name] = {"acc": float((pred[mask] == y[mask]).mean()), "loss": float(loss[mask].mean()),
                     "n": int(mask.sum())}
    out["_confusion"] = {"pred": pred.tolist(), "true": y.tolist()}
    return out


def log_slices(trial: Any, step: int, model: nn.Module, data: Any, groups: Any = None, *,
               outputs: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict[str, Any]:
    """Evaluate per slice and log it to ``trial`` (plus the confusion matrix as a table sample).
    ``outputs``: (logits, targets) already computed on ``data``, to skip the forward pass."""
    result = evaluate_slices(model, data, groups) if outputs is None else slices_of(*outputs, groups)
    confusion = result.pop("_confusion")
    for name, vals in result.items():
        trial.log_slice(step, name, "acc", vals["acc"], int(vals["n"]))
        trial.log_slice(step, name, "loss", vals["loss"], int(vals["n"]))
    true, pred = np.asarray(confusion["true"]), np.asarray(confusion["pred"])
    k = int(max(true.max(), pred.max())) + 1
    matrix = np.zeros((k, k), dtype=int)
    np.add.at(matrix, (true, pred), 1)
    trial.log_sample(step, "confusion", [{"true": i, **{f"pred {j}": int(matrix[i, j]) for j in range(k)}}
                                         for i in range(k)], kind="table")
    return result


def _natural(name: str) -> tuple[tuple[int, int, str], ...]:
    """Sort key: "class 2" before "class 10"; words and digits that are not ASCII ("²") sort as text."""
    return tuple((0, int(p), "") if p.isascii() and p.isdigit() else (1, 0, p) for p in name.split(" "))
