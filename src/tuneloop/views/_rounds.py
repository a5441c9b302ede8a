"""A goal's chain of tuning rounds and their finalize results: the study page's rounds and final
panels, and the rows of ``tuneloop rounds``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tuneloop.analysis import MeanCI, mean_ci
from tuneloop.store import Store, StudyRecord, TrialState


def rounds_view(store: Store, record: StudyRecord) -> dict[str, Any]:
    """The goal's chain of rounds (this one marked) and this round's roles."""
    from tuneloop.rounds import chain, round_info

    if record.config.get("kind") == "final":
        return {"goal": None, "items": [], "roles": None, "final_of": record.config.get("parent")}
    info = round_info(record)
    items = [{"round": r.round, "study": r.study, "current": r.study == record.name} for r in chain(store, record.name)]
    return {"goal": info.goal, "items": items, "roles": info.roles.to_json(), "final_of": None}


def final_view(store: Store, record: StudyRecord) -> dict[str, Any] | None:
    """The latest finalize of this study (or this final study itself): test mean and CI per config."""
    from tuneloop.finalize import latest_final, read_final

    final = record if record.config.get("kind") == "final" else latest_final(store, record.name)
    if final is None:
        return None
    result = read_final(store, final.name)
    return {"study": result.final_study, "metric": result.metric, "tuned_metric": result.tuned_metric,
            "fit_on": result.fit_on, "seeds": result.seeds, "look": result.look,
            "configs": [{"rank": c.rank, "params": c.params, "tuned": c.tuned.mean, "epochs": c.epochs,
                         "values": c.values, "test": None if c.test is None else c.test.to_dict(),
                         "versus": None if c.versus_first is None else c.versus_first.to_dict()}
                        for c in result.configs]}


@dataclass(frozen=True)
class RoundRow:
    """One round of a goal as ``tuneloop rounds`` lists it (strings as stored)."""

    goal: str
    round: int
    study: str
    parent: str | None
    scientific: list[str]
    fixed: dict[str, Any]
    completed: int  # trials completed with a value
    trials: int  # trials of any state
    best: float | None
    final: str | None = None  # the latest finalize study, if any
    final_test: MeanCI | None = None  # its first configuration's test values (None: none measured)


def round_rows(store: Store, name: str) -> list[RoundRow]:
    """Every round of the goal that study (or goal) ``name`` belongs to, in order, with its trial
    counts, best value and latest finalize result."""
    from tuneloop.finalize import latest_final, read_final
    from tuneloop.rounds import chain

    rows = []
    for r in chain(store, name):
        record = store.require_study(r.study)
        trials = store.trials(record.id)
        done = [t.value for t in trials if t.state == TrialState.COMPLETED and t.value is not None]
        leader = record.objectives.best(trials)  # feasible: never one breaking a constraint
        best = None if leader is None else leader.value
        final = latest_final(store, r.study)
        test = None
        if final is not None:
            result = read_final(store, final.name)
            top = result.configs[0].values if result.configs else []
            test = mean_ci(top) if top else None
        rows.append(RoundRow(r.goal, r.round, r.study, r.parent, list(r.roles.scientific), dict(r.roles.fixed),
                             len(done), len(trials), best, None if final is None else final.name, test))
    return rows
