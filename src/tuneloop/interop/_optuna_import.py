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

A study of several objectives becomes one with an objective per direction, named by Optuna's
metric names (else ``objective_0``, ``objective_1``...: ``metric=`` names them). Optuna's constraints
(``trial.constraints``: <= 0 when kept) become tuneloop constraints: the ones a tuneloop export wrote
(its ``tuneloop:constraints`` study attribute) with their metric, operator and bound; any other
as a metric ``constraint_KEY`` holding Optuna's value, constrained ``<= 0``.
"""

from __future__ import annotations

import math
import sys
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
from tuneloop.objectives import Objectives
from tuneloop.space import Choice, Float, Int, LogFloat, Param
from tuneloop.store import Store, TrialState
from tuneloop.store._import import ImportedTrial

SYSTEM_PREFIX = "optuna:"  # Optuna's system attributes, as trial attributes
CONSTRAINTS_ATTR = "tuneloop:constraints"  # a study attribute: [[metric, op, bound], ...] as tuneloop exported them
CONSTRAINTS_ATTR_TRIAL = "constraints"  # Optuna's own: a list, or one "constraints:KEY" attribute each
_STATES = {"COMPLETE": TrialState.COMPLETED, "PRUNED": TrialState.PRUNED, "FAIL": TrialState.FAILED}
_MAX_ERROR = 10_000
_MISFIT = "parameters that do not fit the space (set before failing, or only in unfinished trials)"


def import_optuna(store: Store, name: str, source: str, *, optuna_study: str | None = None,
                  metric: str | Sequence[str] | None = None) -> ImportSummary:
    """Import the Optuna study in ``source`` (its only one, or ``optuna_study``) as study ``name``;
    ``metric`` names its objective (several objectives: a list, one name each)."""
    optuna = optuna_module()
    storage = open_for_reading(source)
    try:
        return _import(optuna, store, name, storage, source, optuna_study, metric)
    finally:
        close(storage)


def _import(optuna: Any, store: Store, name: str, storage: Any, source: str, optuna_study: str | None,
            metric: str | Sequence[str] | None) -> ImportSummary:
    study = _load(optuna, storage, source, optuna_study)
    metric_names = _metric_names(study, metric)
    every = study.get_trials(deepcopy=False)
    frozen = [t for t in every if t.state.name in _STATES]
    directions = {n: "max" if d == optuna.study.StudyDirection.MAXIMIZE else "min"
                  for n, d in zip(metric_names, study.directions, strict=True)}
    objectives, keys = _objectives(study, frozen, directions)
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

    user_attrs, _ = scalar_attrs({k: v for k, v in study.user_attrs.items() if k != CONSTRAINTS_ATTR})
    config = study_config(space, {"kind": "optuna", "source": where(source), "study": study.study_name,
                           "user_attrs": user_attrs}, renamed)
    if keys:
        config["imported_from"]["constraint_keys"] = keys
    if objectives.multi or objectives.constraints:  # as Study.record stores them (one plain objective: metric, mode)
        config.update(objectives.to_config())
    trials, dropped = [], 0
    seed = int(config["seed"])
    from tuneloop.run.driver import trial_seed

    for t, params_of in zip(frozen, configs, strict=True):
        if not fits(space, params_of):
            skipped[_MISFIT] = skipped.get(_MISFIT, 0) + 1
            continue
        trial, n = _trial(t, params_of, objectives, keys, trial_seed(seed, t.number))
        trials.append(trial)
        dropped += n
    first = objectives.primary
    record = write_study(store, name, first.name, first.direction.value, space, config, trials)
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


def _metric_names(study: Any, metric: str | Sequence[str] | None) -> list[str]:
    """The objectives' names: ``metric`` (one per objective), else Optuna's metric names, else ``value``
    (one objective) or ``objective_0``, ``objective_1``..."""
    n = len(study.directions)
    if metric is not None:
        names = [metric] if isinstance(metric, str) else list(metric)
        if len(names) != n:
            raise ConfigError(f"Optuna study {study.study_name!r:.80} has {n} objective{'s' if n != 1 else ''}; "
                              f"name {'each' if n != 1 else 'it'} with --metric NAME{' (once per objective, in order)' if n != 1 else ''}.")
    else:
        names = study.metric_names or (["value"] if n == 1 else [f"objective_{i}" for i in range(n)])
    for each in names:
        check_name(each, "The metric name", "Name it with --metric NAME.")
        if each.startswith("sys/"):
            raise ConfigError(f"The metric name {each!r:.60} starts with 'sys/' (tuneloop's system metrics); "
                              f"name it with --metric NAME.")
    if len(set(names)) != len(names):
        raise ConfigError(f"The objectives' names {names!r:.120} repeat one; name each with --metric NAME, in order.")
    return names


def _objectives(study: Any, frozen: Sequence[Any], directions: dict[str, str]) -> tuple[Objectives, dict[str, str]]:
    """The study's objectives with its constraints, and each constraint metric's Optuna key where it
    has its own name (an Optuna constraint tuneloop did not write)."""
    found = list(dict.fromkeys(k for t in frozen for k in _constraints_of(t)))
    written = _written_constraints(study.user_attrs.get(CONSTRAINTS_ATTR))
    keys: dict[str, str] = {}
    if written is not None and sorted(written) == sorted(found):
        constraints = {m: (op, bound) for m, (op, bound) in written.items()}
    else:
        constraints = {}
        for key in found:
            metric = f"constraint_{key}"
            while metric in directions or metric in constraints:
                metric = f"_{metric}"
            constraints[metric] = ("<=", 0.0)
            keys[metric] = key
    try:
        return Objectives.of(objectives=directions, constraints=constraints or None, owner="The import"), keys
    except ConfigError as exc:
        raise ConfigError(f"{exc} Name the objectives with --metric NAME.") from None


def _written_constraints(value: Any) -> dict[str, tuple[str, float]] | None:
    """What a tuneloop export kept of its constraints (metric -> (op, bound)); None when it is not that."""
    if not isinstance(value, list):
        return None
    out: dict[str, tuple[str, float]] = {}
    for item in value:
        if (not isinstance(item, list) or len(item) != 3 or not isinstance(item[0], str) or item[1] not in ("<=", ">=")
                or isinstance(item[2], bool) or not isinstance(item[2], (int, float))):
            return None
        out[item[0]] = (item[1], float(item[2]))
    return out


def _constraints_of(t: Any) -> dict[str, float]:
    """A trial's Optuna constraints by key (both of Optuna's formats); values that are not numbers left out."""
    try:
        found = t.constraints
    except Exception:  # noqa: BLE001 - a malformed attribute is read as no constraint
        return {}
    return {str(k): float(v) for k, v in found.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _is_constraint_attr(key: str) -> bool:
    return key == CONSTRAINTS_ATTR_TRIAL or key.startswith(CONSTRAINTS_ATTR_TRIAL + ":")


def _trial(t: Any, params: dict[str, Any], objectives: Objectives, keys: dict[str, str],
           seed: int) -> tuple[ImportedTrial, int]:
    """An Optuna FrozenTrial as an ImportedTrial, and how many attributes were left out."""
    user, dropped_user = scalar_attrs(t.user_attrs)
    system = {k: v for k, v in t.system_attrs.items() if k != "fail_reason" and not _is_constraint_attr(k)}
    sys_attrs, dropped_sys = scalar_attrs(system, SYSTEM_PREFIX)
    numbers = [v if isinstance(v, (int, float)) and not isinstance(v, bool) else None for v in t.values or ()]
    value = numbers[0] if numbers else None
    values = {n: float(v) for n, v in zip(objectives.names, numbers, strict=False)
              if v is not None and not math.isnan(v)}
    violations = _constraints_of(t)
    for c in objectives.constraints:
        v = violations.get(keys.get(c.metric, c.metric))
        if v is None or c.metric in values or not math.isfinite(v) or abs(v) >= sys.float_info.max:
            continue  # an objective has its own value; a missing metric stays missing (infeasible)
        values[c.metric] = c.bound + v if c.op == "<=" else c.bound - v  # Optuna keeps how far it is from the bound
    error = t.system_attrs.get("fail_reason") if t.state.name == "FAIL" else None
    points = sorted((int(step), objectives.primary.name, float(v)) for step, v in t.intermediate_values.items()
                    if isinstance(v, (int, float)))
    return ImportedTrial(
        state=_STATES[t.state.name], params=params, seed=seed, number=int(t.number), value=value,
        values=values,
        error=str(error)[:_MAX_ERROR] if error is not None else None,
        started_at=t.datetime_start.timestamp() if t.datetime_start else None,
        finished_at=t.datetime_complete.timestamp() if t.datetime_complete else None,
        points=points, attrs={**sys_attrs, **user},
    ), dropped_user + dropped_sys
