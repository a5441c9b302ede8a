"""MNIST-1D generated offline: sizes, determinism, splits that do not overlap."""

import numpy as np
import pytest

import tuneloop as tl
from tuneloop.datasets import mnist1d


def test_default_split_matches_the_paper_with_a_validation_part():
    data = mnist1d()
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (3200, 800, 1000)
    assert data.n_features == 40 and data.n_classes == 10
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int64
    assert set(np.unique(data.y_train)) == set(range(10))
    train_rows = {row.tobytes() for row in data.x_train}
    assert not any(row.tobytes() in train_rows for row in data.x_val)


def test_generation_is_deterministic_and_seeded():
    from tuneloop.datasets._mnist1d import _mnist1d

    a = _mnist1d.__wrapped__(500, 0.2, 1)
    b = _mnist1d.__wrapped__(500, 0.2, 1)
    c = _mnist1d.__wrapped__(500, 0.2, 2)
    assert np.array_equal(a.x_train, b.x_train) and not np.array_equal(a.x_train, c.x_train)


def test_threads_asking_at_once_share_one_generated_copy():
    """Trials of the population executor run in threads: they must not each generate the data."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: mnist1d(num_samples=600, seed=7), range(4)))
    assert all(r is results[0] for r in results)


def test_bad_arguments():
    with pytest.raises(tl.ConfigError, match="The 'val_fraction' argument of mnist1d must be between 0 and 1"):
        mnist1d(val_fraction=1.5)
