"""MNIST-1D, generated offline with ``mnist1d.data.make_dataset`` (never the downloading
``get_dataset``), with a fixed train / validation / test split."""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from tuneloop._validation import check_positive_int, fail


@dataclass(frozen=True)
class Splits:
    """Train, validation and test arrays of a classification data set."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int

    @property
    def train(self) -> tuple[np.ndarray, np.ndarray]:
        return self.x_train, self.y_train

    @property
    def val(self) -> tuple[np.ndarray, np.ndarray]:
        return self.x_val, self.y_val

    @property
    def test(self) -> tuple[np.ndarray, np.ndarray]:
        """The held-out split: look at it once, at the very end (finalize), never while tuning."""
        return self.x_test, self.y_test

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])

    def __repr__(self) -> str:
        return (f"Splits(train={len(self.y_train)}, val={len(self.y_val)}, test={len(self.y_test)}, "
                f"features={self.n_features}, classes={self.n_classes})")


_LOCK = threading.Lock()


def mnist1d(num_samples: int = 5000, val_fraction: float = 0.2, seed: int = 42) -> Splits:
    """MNIST-1D as in its paper (4,000 train / 1,000 test, 40 features, 10 classes), with
    ``val_fraction`` of the training part held out for validation. About 1 s; cached per process
    (and generated once when trials in threads, as under the population executor, ask at once).

        >>> data = mnist1d()
        >>> data
        Splits(train=3200, val=800, test=1000, features=40, classes=10)
    """
    with _LOCK:
        return _mnist1d(num_samples, val_fraction, seed)


@functools.lru_cache(maxsize=4)
def _mnist1d(num_samples: int, val_fraction: float, seed: int) -> Splits:
    check_positive_int(num_samples, "num_samples", "mnist1d")
    if not 0 < val_fraction < 1:
        raise fail("val_fraction", "mnist1d", "between 0 and 1", val_fraction)
    from mnist1d.data import get_dataset_args, make_dataset

    args: Any = get_dataset_args()
    args.num_samples, args.seed = num_samples, seed
    raw = make_dataset(args)
    x, y = raw["x"].astype(np.float32), raw["y"].astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    n_val = int(round(len(y) * val_fraction))  # noqa: RUF046 - numpy < 2 rounds its floats to a float
    val_idx, train_idx = order[:n_val], order[n_val:]
    return Splits(
        x_train=x[train_idx], y_train=y[train_idx], x_val=x[val_idx], y_val=y[val_idx],
        x_test=raw["x_test"].astype(np.float32), y_test=raw["y_test"].astype(np.int64), n_classes=10,
    )
