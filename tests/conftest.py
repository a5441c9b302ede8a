"""Fixtures: a real SQLite file per test, tiny spaces and experiment files."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import tuneloop as tl


@pytest.fixture
def storage(tmp_path: Path) -> str:
    """A fresh SQLite database file (a real one, in WAL mode)."""
    return f"sqlite:///{tmp_path / 'tuneloop.db'}"


@pytest.fixture
def space() -> tl.Space:
    """Two floats and a conditional choice: small, but every parameter kind is there."""
    return tl.Space(
        x=tl.Float(-2.0, 2.0),
        lr=tl.LogFloat(1e-3, 1.0),
        opt=tl.Choice({"sgd": {"momentum": tl.Float(0.0, 0.9)}, "adam": {}}),
    )


@pytest.fixture
def write_experiment(tmp_path: Path):
    """Write an experiment file from source text and return its path."""

    def write(source: str, name: str = "exp.py") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(source))
        return path

    return write


QUADRATIC_EXPERIMENT = """
    import os, time
    import tuneloop as tl

    space = tl.Space(x=tl.Float(-2.0, 2.0), y=tl.Float(-2.0, 2.0))

    def objective(trial):
        for step in range(3):
            trial.report(step, loss=(trial.params.x - 0.5) ** 2 + trial.params.y ** 2 + 1.0 / (step + 1))
            time.sleep(float(os.environ.get("TRIAL_SLEEP", "0")))
        return {"loss": (trial.params.x - 0.5) ** 2 + trial.params.y ** 2, "pid": os.getpid()}

    study = tl.Study("quad", space, objective, metric="loss", mode="min", searcher="random")
"""
