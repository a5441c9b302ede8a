"""Train / validation / test splits in the shapes users hold them: (x, y) pairs or Datasets."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tuneloop.errors import ConfigError


def three_splits(data: Any) -> tuple[Any, Any, Any]:
    """(train, val, test) from a ``Splits``-like object, a mapping or a 3-tuple."""
    if isinstance(data, Mapping):
        parts = tuple(data.get(k) for k in ("train", "val", "test"))
    elif isinstance(data, tuple) and len(data) == 3:
        parts = data
    else:
        parts = tuple(getattr(data, k, None) for k in ("train", "val", "test"))
    if any(p is None for p in parts):
        raise ConfigError(
            f"Trial.splits needs train, val and test splits; got {type(data).__name__}. Pass a "
            f"tuneloop.datasets.Splits, a dict with 'train', 'val' and 'test', or a (train, val, test) tuple."
        )
    return parts[0], parts[1], parts[2]


def concat(a: Any, b: Any) -> Any:
    """Two splits as one: (x, y) pairs of arrays or tensors are concatenated, Datasets chained."""
    if isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b):
        return tuple(_cat(x, y) for x, y in zip(a, b, strict=True))
    from torch.utils.data import ConcatDataset, Dataset

    if isinstance(a, Dataset) and isinstance(b, Dataset):
        return ConcatDataset([a, b])
    raise ConfigError(
        f"Cannot join a {type(a).__name__} and a {type(b).__name__} to refit on train+val; hold the splits "
        f"as (x, y) arrays or torch Datasets (not DataLoaders), or finalize with fit_on='train'."
    )


def _cat(x: Any, y: Any) -> Any:
    if type(x).__module__.startswith("torch"):
        import torch

        return torch.cat([x, y])
    import numpy as np

    return np.concatenate([np.asarray(x), np.asarray(y)])
