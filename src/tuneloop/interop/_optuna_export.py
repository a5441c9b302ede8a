"""A tuneloop study -> a new Optuna study, through Optuna's own API (``create_trial``, ``add_trials``).

    from tuneloop.interop import export_optuna
    export_optuna(Store("tuneloop.db"), "mlp", "sqlite:///optuna.db")   # or "journal.log"

Each finished trial becomes a FrozenTrial with its parameters (under their original names when the
study was imported), distributions, value, state (completed -> COMPLETE, pruned -> PRUNED, failed
and diverged -> FAIL; a completed trial without a finite value -> FAIL), the metric's curve as
intermediate values, its scalar attributes as user attributes (``optuna:NAME`` ones back as system
attributes) and its start and end times. Running, queued and interrupted trials are skipped.
"""

from __future__ import annotations

import datetime
import math
import warnings
from pathlib import Path
from typing import Any

from tuneloop.errors import ConfigError
from tuneloop.interop._optuna_import import SYSTEM_PREFIX
from tuneloop.interop._optuna_storage import OPTUNA_TABLES, check_journal, close, optuna_module, where
from tuneloop.store import Store, TrialRecord, TrialState

_STATES = {TrialState.COMPLETED: "COMPLETE", TrialState.PRUNED: "PRUNED", TrialState.FAILED: "FAIL",
           TrialState.DIVERGED: "FAIL"}
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


def export_optuna(store: Store, name: str, target: str, *, optuna_study: str | None = None) -> tuple[int, int]:
    """Write study ``name`` as a new Optuna study in ``target`` (a database URL, an SQLite file
    ``*.db``, or any other path as a journal file); (trials written, trials skipped)."""
    optuna = optuna_module()
    record = store.require_study(name)
    records = store.trials(record.id)
    finished = [t for t in records if t.state in _STATES]
    curves = store.series([t.id for t in finished], names=[record.metric]) if finished else {}
    original = dict(record.config.get("imported_from", {}).get("param_names") or {})
    frozen = [_frozen(optuna, record.space, t, curves.get(t.id, {}).get(record.metric, []), original)
              for t in finished]
    storage = _open_for_writing(optuna, target)
    direction = "maximize" if record.mode.value == "max" else "minimize"
    try:
        try:
            study = optuna.create_study(storage=storage, study_name=optuna_study or name, direction=direction)
        except optuna.exceptions.DuplicatedStudyError:
            raise ConfigError(f"{where(target)} already holds an Optuna study named {optuna_study or name!r:.80}; "
                              f"write to another file or delete that study.") from None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks metric names experimental
            study.set_metric_names([record.metric])
        study.add_trials(frozen)
    finally:
        close(storage)
    return len(frozen), len(records) - len(frozen)


def _frozen(optuna: Any, space: Any, t: TrialRecord, curve: list[tuple[int, float]], original: dict[str, str]) -> Any:
    state = optuna.trial.TrialState[_STATES[t.state]]
    value = t.value if t.value is not None and not math.isnan(t.value) else None
    if state == optuna.trial.TrialState.COMPLETE and value is None:
        state = optuna.trial.TrialState.FAIL
    dists = space.distributions(t.params)
    user = {k: v for k, v in t.attrs.items() if not k.startswith(SYSTEM_PREFIX)}
    system = {k[len(SYSTEM_PREFIX):]: v for k, v in t.attrs.items() if k.startswith(SYSTEM_PREFIX)}
    if state == optuna.trial.TrialState.FAIL and t.error:
        system["fail_reason"] = t.error
    frozen = optuna.trial.create_trial(
        state=state, value=None if state == optuna.trial.TrialState.FAIL else value,
        params={original.get(k, k): v for k, v in t.params.items()},
        distributions={original.get(k, k): d for k, d in dists.items()},
        user_attrs=user, system_attrs=system, intermediate_values=dict(curve),
    )
    if t.started_at is not None:
        frozen.datetime_start = datetime.datetime.fromtimestamp(t.started_at)
    if t.finished_at is not None:
        frozen.datetime_complete = datetime.datetime.fromtimestamp(t.finished_at)
    return frozen


def _open_for_writing(optuna: Any, target: str) -> Any:
    """Optuna's storage for ``target``; a database or file that holds something else is refused."""
    if "://" not in target and not target.endswith(SQLITE_SUFFIXES):
        path = Path(target)
        if path.exists() and path.stat().st_size:
            check_journal(path, "export to a new file, e.g. -o optuna.log.")  # never append to someone else's file
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        return JournalStorage(JournalFileBackend(str(path)))
    url = target if "://" in target else f"sqlite:///{Path(target).resolve()}"
    from sqlalchemy import create_engine, inspect

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            names = set(inspect(conn).get_table_names())
    except Exception as exc:  # noqa: BLE001 - a missing driver or a refused connection: one line
        raise ConfigError(f"Cannot open {where(target)}: {str(exc).splitlines()[0]:.160}") from None
    finally:
        engine.dispose()
    if names and not names >= OPTUNA_TABLES:
        raise ConfigError(f"{where(target)} holds another program's tables; export to a new file, e.g. -o optuna.db.")
    try:
        return optuna.storages.RDBStorage(url)
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(f"Optuna cannot open {where(target)}: {str(exc).splitlines()[0]:.200}") from None
