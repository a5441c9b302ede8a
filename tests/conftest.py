"""Fixtures: a real SQLite file per test, tiny spaces and experiment files."""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path

import pytest
import trial_functions as tf
from shared import HOSTILE

import tuneloop as tl


def _session_folder(variable, tmp_path_factory, name):
    """Point ``variable`` at a fresh folder of this session (worker processes inherit it); restore it after."""
    import os

    before = os.environ.get(variable)
    os.environ[variable] = str(tmp_path_factory.mktemp(name))
    yield
    if before is None:
        os.environ.pop(variable, None)
    else:
        os.environ[variable] = before


@pytest.fixture(autouse=True, scope="session")
def _own_config_home(tmp_path_factory):
    """Each test session signs the experiment files it runs with its own key (never the user's
    ~/.config/tuneloop/trust.key)."""
    yield from _session_folder("XDG_CONFIG_HOME", tmp_path_factory, "config")


@pytest.fixture(autouse=True, scope="session")
def _own_data_cache(tmp_path_factory):
    """Generated data sets are cached in this session's own folder (never the user's ~/.cache), shared
    by every test and worker process of the session."""
    yield from _session_folder("TUNELOOP_CACHE", tmp_path_factory, "cache")


@pytest.fixture(autouse=True)
def _no_pins_between_tests(monkeypatch):
    """A file pinned by one test (``finalize`` pins the experiment file it verified) is not pinned
    for the next: the variable is restored after each test."""
    monkeypatch.delenv("TUNELOOP_PINNED", raising=False)


@pytest.fixture(autouse=True)
def _no_holds_between_tests():
    """A study page a test served and left before it drew holds the importance worker paused for up to
    4 s (tuneloop.views._holds): the next test's fits do not wait for it."""
    yield
    import sys

    holds = sys.modules.get("tuneloop.views._holds")
    if holds is not None:
        holds.HOLDS.clear()


@pytest.fixture
def storage(tmp_path: Path) -> str:
    """A fresh SQLite database file (a real one, in WAL mode)."""
    return f"sqlite:///{tmp_path / 'tuneloop.db'}"


_DATABASES = itertools.count()


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory):
    """A real PostgreSQL server for the session (Debian's binaries; .ci/run installs them)."""
    import os

    import postgres_server as pg

    if pg.binaries() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed; .ci/run installs it with apt (postgresql).")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    server = pg.Server(tmp_path_factory.mktemp("pg"))
    yield server
    server.stop("immediate")


@pytest.fixture
def postgres(postgres_server, request, tmp_path, monkeypatch) -> str:
    """A fresh database on the session's PostgreSQL server: its SQLAlchemy URL. Its artifacts go to
    this test's folder (a server URL has no folder of its own: the default is ./tuneloop-artifacts,
    which would be the checkout's)."""
    import re

    monkeypatch.setenv("TUNELOOP_ARTIFACTS", str(tmp_path / "artifacts"))

    name = f"t{next(_DATABASES)}_" + re.sub(r"\W", "_", request.node.name.lower())[:40]
    return postgres_server.create_database(name)


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






def _seeded(trial):
    """The same two configurations over several seeds: seed groups with a band."""
    for step in range(4):
        trial.report(step, loss=trial.params.x + 0.1 * ((trial.seed % 7) / 7) / (step + 1))
    return None


@pytest.fixture(scope="session")
def dashboard_db(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dash")
    storage = f"sqlite:///{folder / 'dash.db'}"
    tl.Study("quad", tl.Space(x=tl.Float(-2.0, 2.0), y=tl.LogFloat(1e-3, 1.0)), tf.quadratic_xy, metric="loss",
             mode="min", storage=storage, searcher="random").run(n_trials=12, seed=0)
    tl.Study("logs", tl.Space(x=tl.Choice([0.5, 2.0])), tf.logs_everything, metric="loss", mode="min",
             storage=storage).run(searcher="grid")
    # random search over two values repeats configurations: trials that differ only by seed
    tl.Study("seeds", tl.Space(x=tl.Choice([1.0, 2.0])), _seeded, metric="loss", mode="min",
             storage=storage, searcher="random").run(n_trials=6, seed=1)
    tl.Study(HOSTILE, tl.Space(x=tl.Float(0.0, 1.0)), tf.quadratic, metric="loss", mode="min",
             storage=storage).run(n_trials=2)
    from tuneloop.store import Store

    with Store(storage) as store:  # a ladder run and baselines, as `tuneloop check` stores them
        store.add_checks(store.get_study("quad").id, [
            {"name": "overfit a tiny batch", "status": "pass", "message": "fell to 0.001", "evidence": {},
             "causes": [], "next_step": "", "seconds": 0.1},
            {"name": "stage: all data", "status": "fail", "message": "val_mse too high", "evidence": {},
             "causes": ["x"], "next_step": "look closer", "seconds": 0.1}], {"mean": 2.5, "ridge regression": 1.5},
            "val_mse")
    from tuneloop.ideas import Ledger

    ledger = Ledger(storage)
    adopted = ledger.add("AdamW", hours=0.5, complexity=1, gain=0.01, p=0.3, config={"optimizer": "adamw"})
    ledger.record_test(adopted.id, metric="val_acc", mode="max", seeds=[1, 2], baseline=[0.7, 0.7],
                       variant=[0.71, 0.72], result={"effect": 0.015, "message": "better: +0.015"})
    ledger.decide(adopted.id, "adopt", actual_hours=1.0)
    ledger.decide(ledger.add("Bigger batch", hours=1, complexity=2, gain=0.01, p=0.5).id, "reject")
    ledger.add(HOSTILE, hours=1, complexity=1, gain=0.01, p=0.2)
    return storage


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """``tuneloop`` in-process (Typer's runner) from a fresh folder: no storage or notification settings
    from the environment, tables unwrapped at 200 columns. Returns ``invoke(*args) -> Result``."""
    from typer.testing import CliRunner

    from tuneloop.cli import app

    monkeypatch.chdir(tmp_path)
    for name in ("TUNELOOP_STORAGE", "TUNELOOP_NOTIFY_URL", "TUNELOOP_SMTP", "TUNELOOP_SMTP_USER",
                 "TUNELOOP_SMTP_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(app, [str(a) for a in args])

    return invoke
