"""Nested, stratified subsets of a training split: what ``tuneloop probe data`` trains on.

For one ``seed`` the subsets grow by prefix: each class's examples are shuffled once by the
seed and a fraction ``f`` keeps the first ``round(f * n_class)`` of them (at least one), so the
10% subset lies inside the 20% subset, which lies inside the 40% one. Integer labels are
stratified by class; other labels (regression targets) are one group.

    idx = subset_indices(y_train, 0.2, seed=0)   # sorted positions into the training split
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tuneloop.errors import ConfigError


def check_fraction(fraction: Any, owner: str) -> float:
    """``fraction`` as a float in (0, 1], or a ConfigError in the project's shape."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ConfigError(f"The 'fraction' of {owner} must be a number in (0, 1]. Got {fraction!r} instead.")
    return float(fraction)


def subset_indices(labels: Any, fraction: float, seed: int = 0) -> np.ndarray:
    """Sorted positions of the ``fraction`` subset of examples labelled ``labels`` (see the module)."""
    fraction = check_fraction(fraction, "subset_indices")
    y = np.asarray(labels.cpu() if hasattr(labels, "cpu") else labels)
    if fraction == 1.0:
        return np.arange(len(y))
    groups = y if y.ndim == 1 and y.dtype.kind in "iub" else np.zeros(len(y), dtype=int)
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 20_211])  # the same shuffles whatever the fraction
    kept = []
    for g in np.unique(groups):  # sorted: the classes take their shuffles in the same order every time
        members = np.flatnonzero(groups == g)
        order = members[rng.permutation(len(members))]
        kept.append(order[:max(1, int(np.floor(fraction * len(members) + 0.5)))])
    return np.sort(np.concatenate(kept))


def is_pair(train: Any) -> bool:
    """Whether ``train`` is an (x, y) pair, the one kind of training split a subset is taken of here."""
    return isinstance(train, (tuple, list)) and len(train) == 2


def take_subset(train: Any, fraction: float, seed: int = 0) -> Any:
    """The ``fraction`` subset of ``train``, an (x, y) pair of arrays or tensors (the same kind back);
    ``train`` itself at 1.0. A DataLoader or Dataset is refused: subset its dataset yourself with
    :func:`subset_indices` over its labels (``Trial.subset_indices``)."""
    fraction = check_fraction(fraction, "the trial")
    if fraction == 1.0:
        return train
    if not is_pair(train):
        raise ConfigError(
            f"A trial with a data fraction ({fraction:g}) needs its training split as an (x, y) pair to take the "
            f"subset; got a {type(train).__name__}. Build the loader over "
            "torch.utils.data.Subset(dataset, trial.subset_indices(labels)) instead: fit trains on it as given.")
    x, y = train
    idx = subset_indices(y, fraction, seed)
    if hasattr(y, "index_select"):  # torch tensors: index on their own device
        import torch

        index = torch.as_tensor(idx, device=y.device)
        return x.index_select(0, index.to(x.device)), y.index_select(0, index)
    return np.asarray(x)[idx], np.asarray(y)[idx]


def class_counts(labels: Any) -> dict[str, int]:
    """{"class 3": examples} of integer labels (the default slice names); {} for other labels."""
    y = np.asarray(labels.cpu() if hasattr(labels, "cpu") else labels)
    if y.ndim != 1 or y.dtype.kind not in "iub":
        return {}
    values, counts = np.unique(y, return_counts=True)
    return {f"class {int(v)}": int(c) for v, c in zip(values, counts, strict=True)}
