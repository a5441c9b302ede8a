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


def _fresh(num_samples=500, seed=3):
    from tuneloop.datasets._mnist1d import _mnist1d

    return _mnist1d.__wrapped__(num_samples, 0.2, seed)  # past the per-process cache: to the disk


def _cached(folder):
    return sorted(p.name for p in folder.iterdir())


def test_generated_once_then_read_from_the_disk_cache(tmp_path, monkeypatch):
    """A second process reads what the first generated (same arrays) instead of generating again."""
    import mnist1d.data

    monkeypatch.setenv("TUNELOOP_CACHE", str(tmp_path / "cache"))
    first = _fresh()
    assert len(_cached(tmp_path / "cache")) == 1 and _cached(tmp_path / "cache")[0].endswith("-500-3.npz")

    def no_generating(*_):
        raise AssertionError("generated again although the cache holds the data")

    monkeypatch.setattr(mnist1d.data, "make_dataset", no_generating)
    again = _fresh()
    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert np.array_equal(getattr(first, name), getattr(again, name))
        assert getattr(first, name).dtype == getattr(again, name).dtype


@pytest.mark.parametrize("spoil", ["garbage", "truncated", "labels", "pickled", "shape"])
def test_a_spoiled_cache_file_is_generated_again_never_unpickled(tmp_path, monkeypatch, spoil):
    monkeypatch.setenv("TUNELOOP_CACHE", str(tmp_path))
    good = _fresh()
    [path] = list(tmp_path.iterdir())
    with np.load(path) as found:
        raw = {k: found[k] for k in found.files}
    if spoil == "garbage":
        path.write_bytes(b"not a zip file")
    elif spoil == "truncated":
        path.write_bytes(path.read_bytes()[:1000])
    elif spoil == "labels":
        np.savez(path, **{**raw, "y": raw["y"] + 100})
    elif spoil == "pickled":  # an object array would need pickle to load: refused, not run
        np.savez(path, **{**raw, "x": np.array([object()] * len(raw["x"]), dtype=object)})
    else:
        np.savez(path, **{**raw, "x_test": raw["x_test"][:, :5]})
    again = _fresh()
    assert np.array_equal(again.x_train, good.x_train) and np.array_equal(again.y_test, good.y_test)
    with np.load(path) as found:  # and the cache holds the good arrays again
        assert np.array_equal(found["y"], raw["y"]) and found["x_test"].shape == raw["x_test"].shape


def test_a_cache_folder_that_cannot_be_written_only_costs_the_time(tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache folder would be")
    monkeypatch.setenv("TUNELOOP_CACHE", str(blocked / "cache"))
    data = _fresh()
    assert len(data.y_train) + len(data.y_val) == 400 and blocked.read_text().startswith("a file")


def test_the_cache_folder_follows_xdg_without_tuneloop_cache(tmp_path, monkeypatch):
    from tuneloop.datasets._mnist1d import cache_folder

    monkeypatch.delenv("TUNELOOP_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_folder() == tmp_path / "tuneloop"
