"""An Optuna study -> a tuneloop study: its space, trials, states, values, curves and attributes.

    from tuneloop.interop import import_optuna
    summary = import_optuna(Store("tuneloop.db"), "mlp", "sqlite:///optuna.db")

Optuna's distributions become the space (``FloatDistribution`` -> ``Float``, or ``LogFloat`` when
``log``; ``IntDistribution`` -> ``Int``; ``CategoricalDistribution`` -> ``Choice``); a parameter
whose distribution widened between trials gets the union of its ranges (a changed kind, scale or
step is refused); parameters set only in some trials become conditional children of the choice
that decides them. COMPLETE, PRUNED and FAIL trials keep their numbers, values, intermediate
values (the study's metric curve), start and end times and scalar user attributes (system
attributes as ``optuna:NAME``); RUNNING and WAITING ones are skipped and counted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from tuneloop.errors import ConfigError
from tuneloop.interop._common import (
    ImportSummary,
    check_name,
    fits,
    identifiers,
    infer_space,
    scalar_attrs,
    study_config,
    write_study,
)
from tuneloop.interop._optuna_storage import close, open_for_reading, optuna_module, where
from tuneloop.space import Choice, Float, Int, LogFloat, Param
from tuneloop.store import Store, TrialState
from tuneloop.store._import import ImportedTrial

SYSTEM_PREFIX = "optuna:"  # Optuna's system attributes, as trial attributes
_STATES = {"COMPLETE": TrialState.COMPLETED, "PRUNED": TrialState.PRUNED, "FAIL": TrialState.FAILED}
_MAX_ERROR = 10_000
_MISFIT = "parameters that do not fit the space (set before failing, or only in unfinished trials)"


def import_optuna(store: Store, name: str, source: str, *, optuna_study: str | None = None,
                  metric: str | None = None) -> ImportSummary:
    """Import the Optuna study in ``source`` (its only one, or ``optuna_study``) as study ``name``."""
    optuna = optuna_module()
    storage = open_for_reading(source)
    try:
        return _import(optuna, store, name, storage, source, optuna_study, metric)
    finally:
        close(storage)


def _import(optuna: Any, store: Store, name: str, storage: Any, source: str, optuna_study: str | None,
            metric: str | None) -> ImportSummary:
    study = _load(optuna, storage, source, optuna_study)
    if len(study.directions) != 1:
        raise ConfigError(f"Optuna study {study.study_name!r:.80} has {len(study.directions)} objectives; tuneloop "
                          f"imports single-objective studies.")
    metric = metric or (study.metric_names or ["value"])[0]
    check_name(metric, "The metric name", "Name it with --metric NAME.")
    if metric.startswith("sys/"):
        raise ConfigError(f"The metric name {metric!r:.60} starts with 'sys/' (tuneloop's system metrics); "
                          f"name it with --metric NAME.")
    mode = "max" if study.direction == optuna.study.StudyDirection.MAXIMIZE else "min"
    every = study.get_trials(deepcopy=False)
    frozen = [t for t in every if t.state.name in _STATES]
    skipped: dict[str, int] = {}
    if unfinished := len(every) - len(frozen):
        skipped["running or waiting in Optuna"] = unfinished

    names = identifiers(list(dict.fromkeys(k for t in frozen for k in t.params)))
    renamed = {new: old for old, new in names.items() if new != old}
    params = {names[k]: _param(k, [t.distributions[k] for t in frozen if k in t.distributions]) for k in names}
    configs = [{names[k]: v for k, v in t.params.items()} for t in frozen]
    complete = [c for t, c in zip(frozen, configs, strict=True) if t.state.name == "COMPLETE"]
    basis = complete or configs  # the completed trials' structure decides; a trial that does not fit is skipped
    space = infer_space({k: p for k, p in params.items() if any(k in c for c in basis)}, basis)

    user_attrs, _ = scalar_attrs(study.user_attrs)
    config = study_config(space, {"kind": "optuna", "source": where(source), "study": study.study_name,
                           "user_attrs": user_attrs}, renamed)
    trials, dropped = [], 0
    seed = int(config["seed"])
    from tuneloop.run.driver import trial_seed

    for t, params_of in zip(frozen, configs, strict=True):
        if not fits(space, params_of):
            skipped[_MISFIT] = skipped.get(_MISFIT, 0) + 1
            continue
        trial, n = _trial(t, params_of, metric, trial_seed(seed, t.number))
        trials.append(trial)
        dropped += n
    record = write_study(store, name, metric, mode, space, config, trials)
    counts: dict[str, int] = {}
    for trial in trials:
        counts[trial.state.value] = counts.get(trial.state.value, 0) + 1
    return ImportSummary(record, counts, skipped, renamed, dropped)


def _load(optuna: Any, storage: Any, source: str, wanted: str | None) -> Any:
    try:
        names = list(optuna.get_all_study_names(storage=storage))
    except Exception as exc:  # noqa: BLE001 - a malformed storage: one line
        raise ConfigError(f"Optuna cannot list the studies in {where(source)}: {str(exc).splitlines()[0]:.200}") from None
    if wanted is None:
        if len(names) != 1:
            listed = ", ".join(repr(n)[:60] for n in names[:20]) or "none"
            raise ConfigError(f"{where(source)} holds {len(names)} Optuna studies ({listed}); choose one with "
                              f"--optuna-study NAME.")
        wanted = names[0]
    elif wanted not in names:
        listed = ", ".join(repr(n)[:60] for n in names[:20]) or "none"
        raise ConfigError(f"No Optuna study named {wanted!r:.80} in {where(source)}; studies there: {listed}.")
    try:
        return optuna.load_study(study_name=wanted, storage=storage)
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(f"Optuna cannot load study {wanted!r:.80}: {str(exc).splitlines()[0]:.200}") from None


def _param(name: str, dists: Sequence[Any]) -> Param:
    """One tuneloop parameter covering every distribution ``name`` had (their union)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    kinds = {type(d) for d in dists}
    changed = f"Parameter {name!r:.60} changed its distribution between trials"
    if len(kinds) != 1:
        raise ConfigError(f"{changed} ({', '.join(sorted(k.__name__ for k in kinds))}); tuneloop gives a parameter "
                          f"one kind. Import a study whose trials agree, or --optuna-study another.")
    first = dists[0]
    if isinstance(first, CategoricalDistribution):
        values: list[Any] = []
        for d in dists:
            values.extend(v for v in d.choices if not any(type(v) is type(w) and v == w for w in values))
        return Choice(values)
    if not isinstance(first, (FloatDistribution, IntDistribution)):
        raise ConfigError(f"Parameter {name!r:.60} has a distribution tuneloop does not know ({type(first).__name__}).")
    if len({(d.log, d.step) for d in dists}) != 1:
        raise ConfigError(f"{changed} (its log scale or step); tuneloop gives a parameter one scale and step.")
    low, high = min(d.low for d in dists), max(d.high for d in dists)
    try:
        if low == high:
            return Choice([low])
        if isinstance(first, IntDistribution):
            return Int(int(low), int(high), log=first.log, step=int(first.step))
        if first.log:
            return LogFloat(low, high)
        return Float(low, high, step=first.step)
    except ConfigError as exc:
        raise ConfigError(f"{changed} to ranges tuneloop cannot join: {exc}") from None


def _trial(t: Any, params: dict[str, Any], metric: str, seed: int) -> tuple[ImportedTrial, int]:
    """An Optuna FrozenTrial as an ImportedTrial, and how many attributes were left out."""
    user, dropped_user = scalar_attrs(t.user_attrs)
    system = {k: v for k, v in t.system_attrs.items() if k != "fail_reason"}
    sys_attrs, dropped_sys = scalar_attrs(system, SYSTEM_PREFIX)
    value = t.value if isinstance(t.value, (int, float)) else None
    error = t.system_attrs.get("fail_reason") if t.state.name == "FAIL" else None
    points = sorted((int(step), metric, float(v)) for step, v in t.intermediate_values.items()
                    if isinstance(v, (int, float)))
    return ImportedTrial(
        state=_STATES[t.state.name], params=params, seed=seed, number=int(t.number), value=value,
        values={} if value is None or math.isnan(value) else {metric: float(value)},
        error=str(error)[:_MAX_ERROR] if error is not None else None,
        started_at=t.datetime_start.timestamp() if t.datetime_start else None,
        finished_at=t.datetime_complete.timestamp() if t.datetime_complete else None,
        points=points, attrs={**sys_attrs, **user},
    ), dropped_user + dropped_sys
