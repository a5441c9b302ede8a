"""The public surface: curated, sorted names that all import."""

import importlib

import pytest

import tuneloop as tl

PACKAGES = ["tuneloop", "tuneloop.search", "tuneloop.schedule", "tuneloop.run", "tuneloop.store",
            "tuneloop.datasets", "tuneloop.torch", "tuneloop.trackers"]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_and_every_name_imports(name):
    module = importlib.import_module(name)
    assert module.__all__ == sorted(module.__all__)
    for attr in module.__all__:
        assert getattr(module, attr) is not None, attr


def test_importing_tuneloop_does_not_import_torch_or_ray():
    import subprocess
    import sys

    code = "import sys, tuneloop; print('torch' in sys.modules, 'ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_error_hierarchy():
    assert issubclass(tl.ConfigError, tl.TuneloopError)
    assert issubclass(tl.SchemaVersionError, tl.StorageError)
    assert issubclass(tl.StorageError, tl.TuneloopError)
    assert not issubclass(tl.TrialPruned, tl.TuneloopError)
