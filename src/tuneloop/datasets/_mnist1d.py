"""MNIST-1D, generated offline with ``mnist1d.data.make_dataset`` (never the downloading
``get_dataset``), with a fixed train / validation / test split.

Generating takes about 3 s of a core, which every worker process would pay before its first trial.
So the generated arrays are kept on disk (``$TUNELOOP_CACHE``, else ``$XDG_CACHE_HOME/tuneloop``, else
``~/.cache/tuneloop``), one ``.npz`` per (mnist1d version, samples, seed), and read back in a few
milliseconds: data is prepared once per source, not once per process. The file is read with
``allow_pickle=False`` and checked (shapes, types, labels); one that fails is generated again.
A cache that cannot be written (a read-only home) only costs the time.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import tempfile
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
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
    ``val_fraction`` of the training part held out for validation. Generated once (about 3 s) and
    kept on disk for every later process; cached per process too (and read once when trials in
    threads, as under the population executor, ask at once).

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
    raw = _generated(num_samples, seed)
    x, y = raw["x"].astype(np.float32), raw["y"].astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    n_val = int(round(len(y) * val_fraction))  # noqa: RUF046 - numpy < 2 rounds its floats to a float
    val_idx, train_idx = order[:n_val], order[n_val:]
    return Splits(
        x_train=x[train_idx], y_train=y[train_idx], x_val=x[val_idx], y_val=y[val_idx],
        x_test=raw["x_test"].astype(np.float32), y_test=raw["y_test"].astype(np.int64), n_classes=10,
    )


_ARRAYS = ("x", "y", "x_test", "y_test")


def cache_folder() -> Path:
    """Where generated data sets are kept: ``$TUNELOOP_CACHE``, else ``$XDG_CACHE_HOME/tuneloop``,
    else ``~/.cache/tuneloop``."""
    if os.environ.get("TUNELOOP_CACHE"):
        return Path(os.environ["TUNELOOP_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tuneloop"


def _generated(num_samples: int, seed: int) -> dict[str, np.ndarray]:
    """MNIST-1D's raw arrays: from the disk cache when a valid copy is there, else generated (and
    cached). Keyed by the mnist1d package's version, which decides what ``make_dataset`` draws."""
    try:
        version = importlib.metadata.version("mnist1d")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    path = cache_folder() / f"mnist1d-{version}-{num_samples}-{seed}.npz"
    raw = _read(path, num_samples)
    if raw is not None:
        return raw
    from mnist1d.data import get_dataset_args, make_dataset

    args: Any = get_dataset_args()
    args.num_samples, args.seed = num_samples, seed
    made = make_dataset(args)
    raw = {key: np.asarray(made[key]) for key in _ARRAYS}
    _write(path, raw)
    return raw


def _read(path: Path, num_samples: int) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None when the file is missing or is not what ``make_dataset`` makes."""
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as found:
            raw = {key: found[key] for key in _ARRAYS}
    except (OSError, ValueError, KeyError, EOFError, AttributeError, zipfile.BadZipFile):
        return None  # missing, not an .npz, an array that would need pickle, or one missing
    x, y, x_test, y_test = (raw[key] for key in _ARRAYS)
    if (x.ndim != 2 or x_test.ndim != 2 or x.shape[1] != x_test.shape[1] or y.shape != (len(x),)
            or y_test.shape != (len(x_test),) or len(x) + len(x_test) != num_samples
            or x.dtype.kind != "f" or x_test.dtype.kind != "f" or y.dtype.kind not in "iu" or y_test.dtype.kind not in "iu"
            or not (np.isfinite(x).all() and np.isfinite(x_test).all())
            or y.min(initial=0) < 0 or y.max(initial=0) > 9 or y_test.min(initial=0) < 0 or y_test.max(initial=0) > 9):
        return None
    return raw


def _write(path: Path, raw: dict[str, np.ndarray]) -> None:
    """Write the arrays whole or not at all (another process may be reading or writing the same file)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, x=raw["x"], y=raw["y"], x_test=raw["x_test"], y_test=raw["y_test"])
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        pass  # no cache: the next process generates again
