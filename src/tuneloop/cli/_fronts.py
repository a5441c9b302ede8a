"""What the commands say about a study's objectives: headers, each trial's feasibility, the front
best first, the line saying what a scheduler judges (data in, Rich markup or JSON data out; the
front's table is :func:`tuneloop.cli._tables.front_table`).

Every objective and metric name is stored data (a database may come from someone else), so each
goes through :func:`tuneloop._text.safe` before it becomes a cell, title or caption."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tuneloop._text import safe
from tuneloop.objectives import Objective, Objectives, finite


def label(objective: Objective) -> str:
    """A column header: ``val_acc (max)``."""
    return f"{safe(objective.name)} ({objective.direction.value})"


def summary(objectives: Objectives) -> str:
    """One line: ``max val_acc, min latency_ms; subject to latency_ms <= 2`` (markup, made safe)."""
    return safe(objectives.describe())


def feasibility(objectives: Objectives, trial: Any) -> str:
    """``yes``, or ``no: latency_ms 3.1 > 2`` naming each broken constraint (markup, made safe);
    ``-`` for a trial that has not completed (its final values are not all there)."""
    if str(getattr(trial.state, "value", trial.state)) != "completed":
        return "-"
    broken = objectives.broken(trial.values)
    if not broken:
        return "yes"
    parts = []
    for c in broken:
        value = finite(trial.values.get(c.metric))
        if value is None:
            parts.append(f"{c.metric} missing")
        else:
            parts.append(f"{c.metric} {value:.4g} {'>' if c.op == '<=' else '<'} {c.bound:g}")
    return safe("no: " + ", ".join(parts))


def infeasible_count(objectives: Objectives, trials: Sequence[Any]) -> tuple[int, int]:
    """(completed trials breaking a constraint, completed trials) among ``trials``."""
    done = objectives.completed(trials)
    return sum(not objectives.feasible(t.values) for t in done), len(done)


def infeasible_note(objectives: Objectives, trials: Sequence[Any]) -> str | None:
    """``3 of 12 completed trials are infeasible (break latency_ms <= 2)``; None without constraints."""
    if not objectives.constraints:
        return None
    bad, done = infeasible_count(objectives, trials)
    rules = safe(", ".join(str(c) for c in objectives.constraints))
    verb = "is" if bad == 1 else "are"
    return f"{bad} of {done} completed trial{'s' if done != 1 else ''} {verb} infeasible (break {rules}) and left out"


def extra_metrics(objectives: Objectives) -> list[str]:
    """The constraints' metrics that are not objectives (shown beside them)."""
    return [m for m in dict.fromkeys(c.metric for c in objectives.constraints) if m not in objectives.names]


def front_json(objectives: Objectives, trials: Sequence[Any]) -> dict[str, Any]:
    """``tuneloop best --json`` of a multi-objective study: its objectives, constraints and front."""
    bad, done = infeasible_count(objectives, trials)
    return {
        **{k: v for k, v in objectives.to_json().items() if k != "prune_on"},
        "completed": done, "infeasible": bad,
        "front": [{"number": t.number, "value": t.value, "values": t.values, "params": t.params, "seed": t.seed}
                  for t in objectives.front_sorted(trials)],
    }


def scheduler_name(spec: Any) -> str:
    """The name of a scheduler as ``Study(scheduler=...)`` takes it (a name, a dict, an instance)."""
    if isinstance(spec, str):
        return spec
    if isinstance(spec, dict):
        return str(spec.get("name", "?"))
    return type(spec).__name__.lower()


def judge_line(objectives: Objectives, scheduler: Any) -> str | None:
    """What the scheduler compares between trials, when there are several objectives and a
    scheduler: ``asha judges trials on val_acc (max), the first objective; choose another with prune_on=``."""
    name = scheduler_name(scheduler)
    if not objectives.multi or name in ("none", "noscheduler"):
        return None
    judge = objectives.judged
    if not judge.scalarized and judge.names[0] == objectives.primary.name:
        why = "the first objective; choose another with prune_on="
    else:
        why = "as prune_on= says"
    return f"{safe(name)} judges trials on {safe(str(judge))}, {why}"
