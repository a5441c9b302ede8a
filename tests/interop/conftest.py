"""Optuna studies built with Optuna's own API, once per session (Optuna's storages cost ~1 s to load)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class OptunaSource:
    """An Optuna storage holding one study, and what the tests compare against."""

    source: str  # what --from takes
    name: str  # the Optuna study's name


def objective(trial):
    """Every distribution kind; PRUNED, FAIL and COMPLETE trials; intermediate values; user attributes."""
    import optuna

    lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    width = trial.suggest_int("width", 16, 64, step=16)
    dropout = trial.suggest_float("dropout", 0.0, 0.5, step=0.1)
    act = trial.suggest_categorical("act", ["relu", "gelu", "tanh"])
    layers = trial.suggest_int("layers", 1, 8, log=True)
    trial.set_user_attr("commit", "abc123")
    trial.set_user_attr("n_params", width * layers)
    trial.set_user_attr("shape", [width, layers])  # not a scalar: left out of the import
    loss = (lr - 0.01) ** 2 * 1e3 + dropout + layers / width + {"relu": 0.0, "gelu": 0.1, "tanh": 0.2}[act]
    for step in range(3):
        trial.report(loss + 1.0 / (step + 1), step)
    if trial.number % 5 == 3:
        raise ValueError("diverged on purpose")
    if trial.number % 4 == 1 or trial.should_prune():
        raise optuna.TrialPruned()
    return loss


def build(storage, name: str, n_trials: int = 16, *, running: bool = False) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # failed trials are on purpose
    study = optuna.create_study(storage=storage, study_name=name, direction="minimize",
                                sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=5),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ExperimentalWarning
        study.set_metric_names(["loss"])
    study.set_user_attr("owner", "someone")
    study.optimize(objective, n_trials=n_trials, catch=(ValueError,))
    if running:
        study.ask()  # left running, as a killed process leaves it


@pytest.fixture(scope="session")
def optuna_sqlite(tmp_path_factory) -> OptunaSource:
    """An SQLite Optuna database (built in memory and copied: Optuna writes SQLite trial by trial, slowly)."""
    import optuna

    path = tmp_path_factory.mktemp("optuna") / "optuna.db"
    memory = optuna.storages.InMemoryStorage()
    build(memory, "mlp", running=True)
    optuna.copy_study(from_study_name="mlp", from_storage=memory, to_storage=f"sqlite:///{path}")
    return OptunaSource(f"sqlite:///{path}", "mlp")


@pytest.fixture(scope="session")
def optuna_journal(tmp_path_factory) -> OptunaSource:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path: Path = tmp_path_factory.mktemp("optuna") / "journal.log"
    build(JournalStorage(JournalFileBackend(str(path))), "mlp-journal", n_trials=8)
    return OptunaSource(str(path), "mlp-journal")
