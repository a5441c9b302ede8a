"""A tuneloop study -> a new Optuna study, through Optuna's own API (``create_trial``, ``add_trials``).

    from tuneloop.interop import export_optuna
    export_optuna(Store("tuneloop.db"), "mlp", "sqlite:///optuna.db")   # or "journal.log"

The Optuna study gets the study's directions (one per objective) and metric names. Each finished
trial becomes a FrozenTrial with its parameters (under their original names when the study was
imported), distributions, values (one per objective), state (completed -> COMPLETE, pruned -> PRUNED,
failed and diverged -> FAIL; a completed trial without every objective finite -> FAIL), the metric's
curve as intermediate values (one objective only: Optuna keeps none for several), its scalar
attributes as user attributes (``optuna:NAME`` ones back as system attributes) and its start and end
times. Running, queued and interrupted trials are skipped.

Constraints become Optuna's own: each completed trial's ``constraints`` (``constraints:METRIC``
system attributes, how far it breaks each one, <= 0 when kept), which ``study.best_trials`` and
optuna-dashboard read; the study's user attribute ``tuneloop:constraints`` keeps each one's metric,
operator and bound so an import reads them back.
"""

from __future__ import annotations

import datetime
import math
import sys
import warnings
from pathlib import Path
from typing import Any

from tuneloop.errors import ConfigError
from tuneloop.interop._optuna_import import CONSTRAINTS_ATTR, SYSTEM_PREFIX
from tuneloop.interop._optuna_storage import OPTUNA_TABLES, check_journal, close, optuna_module, where
from tuneloop.objectives import Objectives
from tuneloop.store import Store, TrialRecord, TrialState

_STATES = {TrialState.COMPLETED: "COMPLETE", TrialState.PRUNED: "PRUNED", TrialState.FAILED: "FAIL",
           TrialState.DIVERGED: "FAIL"}
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


def export_optuna(store: Store, name: str, target: str, *, optuna_study: str | None = None) -> tuple[int, int]:
    """Write study ``name`` as a new Optuna study in ``target`` (a database URL, an SQLite file
    ``*.db``, or any other path as a journal file); (trials written, trials skipped)."""
    optuna = optuna_module()
    record = store.require_study(name)
    objectives = record.objectives
    records = store.trials(record.id)
    finished = [t for t in records if t.state in _STATES]
    curves = (store.series([t.id for t in finished], names=[record.metric])
              if finished and not objectives.multi else {})
    imported = record.config.get("imported_from", {})
    original = dict(imported.get("param_names") or {})
    keys = dict(imported.get("constraint_keys") or {})  # a constraint read from Optuna keeps its own key
    frozen = [_frozen(optuna, record.space, objectives, t, curves.get(t.id, {}).get(record.metric, []), original, keys)
              for t in finished]
    storage = _open_for_writing(optuna, target)
    directions = ["maximize" if o.direction.value == "max" else "minimize" for o in objectives.items]
    try:
        try:
            study = optuna.create_study(storage=storage, study_name=optuna_study or name, directions=directions)
        except optuna.exceptions.DuplicatedStudyError:
            raise ConfigError(f"{where(target)} already holds an Optuna study named {optuna_study or name!r:.80}; "
                              f"write to another file or delete that study.") from None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks metric names experimental
            study.set_metric_names(objectives.names)
        if objectives.constraints:
            study.set_user_attr(CONSTRAINTS_ATTR, [[c.metric, c.op, c.bound] for c in objectives.constraints])
        study.add_trials(frozen)
    finally:
        close(storage)
    return len(frozen), len(records) - len(frozen)


def _frozen(optuna: Any, space: Any, objectives: Objectives, t: TrialRecord, curve: list[tuple[int, float]],
            original: dict[str, str], keys: dict[str, str]) -> Any:
    state = optuna.trial.TrialState[_STATES[t.state]]
    values: list[float] | None
    if objectives.multi:
        vector = objectives.vector(t.values)
        values = None if vector is None else list(vector)
    else:
        values = [t.value] if t.value is not None and not math.isnan(t.value) else None
    if state == optuna.trial.TrialState.COMPLETE and values is None:
        state = optuna.trial.TrialState.FAIL
    if state == optuna.trial.TrialState.PRUNED and objectives.multi:
        values = None  # Optuna keeps no values for a pruned trial of several objectives
    dists = space.distributions(t.params)
    user = {k: v for k, v in t.attrs.items() if not k.startswith(SYSTEM_PREFIX)}
    system = {k[len(SYSTEM_PREFIX):]: v for k, v in t.attrs.items() if k.startswith(SYSTEM_PREFIX)}
    if state == optuna.trial.TrialState.FAIL and t.error:
        system["fail_reason"] = t.error
    constraints = None
    if objectives.constraints and state == optuna.trial.TrialState.COMPLETE:
        # a missing metric breaks its constraint without bound; a finite stand-in keeps the storage strict JSON
        constraints = {keys.get(c.metric, c.metric): min(c.violation(t.values), sys.float_info.max)
                       for c in objectives.constraints}
    frozen = optuna.trial.create_trial(
        state=state, values=None if state == optuna.trial.TrialState.FAIL else values,
        params={original.get(k, k): v for k, v in t.params.items()},
        distributions={original.get(k, k): d for k, d in dists.items()},
        user_attrs=user, system_attrs=system, intermediate_values=dict(curve), constraints=constraints,
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
