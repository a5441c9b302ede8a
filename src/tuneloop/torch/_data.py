"""Batches from (x, y) arrays/tensors or from a DataLoader, the same way for training and eval."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch


def _tensor(a: Any, dtype: torch.dtype | None = None) -> torch.Tensor:
    t = a if isinstance(a, torch.Tensor) else torch.as_tensor(np.asarray(a))
    return t.to(dtype) if dtype is not None and t.is_floating_point() else t


class Batches:
    """Yields (x, y) batches on ``device``; arrays are shuffled with a seed per epoch. Floating
    inputs take torch's default dtype (float32 unless set otherwise, e.g. float64 for checks)."""

    def __init__(self, source: Any, batch_size: int, device: torch.device, shuffle: bool, seed: int) -> None:
        self.device, self.shuffle, self.seed, self.batch_size = device, shuffle, seed, batch_size
        if isinstance(source, torch.utils.data.DataLoader):
            self.loader: Any = source
            self.per_epoch = len(source)
            self.n = len(source.dataset) if hasattr(source.dataset, "__len__") else -1
        else:
            x, y = source
            self.loader = None
            self.x, self.y = _tensor(x, torch.get_default_dtype()).to(device), _tensor(y).to(device)
            self.n = len(self.y)
            self.per_epoch = math.ceil(self.n / batch_size)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of one epoch; the same ``epoch`` and seed give the same order."""
        if self.loader is not None:
            for x, y in self.loader:
                yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            return
        order = self.order(epoch)
        for i in range(self.per_epoch):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            yield self.x[idx], self.y[idx]


    def order(self, epoch: int) -> torch.Tensor:
        """The example order of one epoch (arrays only): a permutation seeded by (seed, epoch)."""
        if not self.shuffle:
            return torch.arange(self.n, device=self.device)
        gen = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        return torch.randperm(self.n, generator=gen).to(self.device)


def batches(source: Any, batch_size: int, device: torch.device, *, shuffle: bool, seed: int) -> Batches:
    return source if isinstance(source, Batches) else Batches(source, batch_size, device, shuffle, seed)
